"""broker.execute: the only door to the outside world.

Order of checks for every intent (nothing is executed unless all pass):
1. the intent names a known tool and its params have a canonical form (intent hash);
2. the capability token verifies for exactly this session, tool and intent hash — signature,
   aud, iss, typ, exp/nbf, revocation, single-use jti (tokens.CapabilityVerifier) — and, when
   the caller names the subject, was issued to that subject;
3. the session is open and has an absolute workspace;
4. params validate strictly against the tool's model (unknown params refused, no coercion);
5. the constraints are rebuilt from the token's signed `cons` claim — never from anything the
   caller passes — and the tool function re-checks every one before touching anything.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson
from pydantic import BaseModel, ValidationError

from ..core.canon import NotCanonical, intent_hash
from ..errors import BadRequest, ConstraintViolation, TokenInvalid, ToolError
from ..policy.models import (
    CONSTRAINT_MODELS,
    PARAM_MODELS,
    Session,
    ToolIntent,
    format_validation_error,
)
from .mcp import McpHost, McpSupervisor, run_mcp_call


class SecretSource(Protocol):
    """What the broker needs from secrets.SecretStore."""

    def get(self, name: str) -> Any: ...


class TokenVerifier(Protocol):
    def verify(self, token: str, *, tool: str, intent_hash: str, session_id: str) -> Any: ...


#: distinct `cons` claims whose validated constraint model is kept (see `_constraints`)
CONSTRAINT_CACHE_SIZE = 256


def _claim(claims: Any, name: str) -> Any:
    if isinstance(claims, Mapping):
        return claims.get(name)
    return getattr(claims, name, None)


class Broker:
    """Verifies a capability token for one exact intent, re-checks its constraints, runs it."""

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        secrets: SecretSource | None = None,
        docker_runtime: str | None = None,
        skill_verifier: Callable[[str, str], bool] | None = None,
        data_dir: str | None = None,
        mcp_host: McpHost | None = None,
    ) -> None:
        self.verifier = verifier
        #: the engine's data dir, written into every container's labels (None: not labelled)
        self.data_dir = data_dir
        #: this engine instance: a running engine reaps only containers of earlier instances
        self.engine_instance = uuid.uuid4().hex
        self.secrets = secrets
        self.docker_runtime = docker_runtime
        #: `skill_verifier(image, image_id)`: True only for a registered skill with a verified
        #: signature; the engine's view, never the intent's. Without one, `require_signed`
        #: overrides refuse every run (fail closed).
        self.skill_verifier = skill_verifier
        self._runners: dict[str, Callable[[BaseModel, BaseModel, Session], dict[str, Any]]] = {
            "file.read": self._file_read,
            "file.write": self._file_write,
            "http.fetch": self._http_fetch,
            "docker.run": self._docker_run,
            "shell.exec": self._shell_exec,
            "mcp.call": self._mcp_call,
        }
        #: upstream MCP servers (started on first use); None: no data dir or no host
        self.mcp: McpSupervisor | None = None
        if mcp_host is not None and data_dir is not None:
            self.mcp = McpSupervisor(
                mcp_host, secrets=secrets, base_dir=str(Path(data_dir) / "mcp")
            )
        #: (tool, canonical cons bytes) -> validated constraints model, least recently used first
        self._cons_cache: OrderedDict[tuple[str, bytes], BaseModel] = OrderedDict()
        self._cons_lock = threading.Lock()

    def execute(
        self,
        intent: ToolIntent,
        token: str,
        *,
        session: Session,
        subject: str | None = None,
    ) -> dict[str, Any]:
        """Run `intent` if `token` allows exactly it; return the DESIGN section 6 result.

        Raises TokenInvalid, ConstraintViolation, TooLarge, BadRequest or ToolError.
        """
        if not isinstance(intent, ToolIntent):
            raise BadRequest("intent must be a ToolIntent")
        tool = intent.tool
        if tool not in PARAM_MODELS or tool not in self._runners:
            raise BadRequest(f"unknown tool {tool!r}")
        try:
            ih = intent_hash(tool, intent.params)
        except NotCanonical as exc:
            raise BadRequest(f"params have no canonical form: {exc}") from exc
        claims = self.verifier.verify(token, tool=tool, intent_hash=ih, session_id=session.id)
        if subject is not None and _claim(claims, "sub") != subject:
            raise TokenInvalid(
                "capability token refused: issued to another subject",
                details={"reason": "wrong_subject"},
            )
        if session.status != "open":
            raise ConstraintViolation(f"session {session.id} is closed; nothing runs in it")
        try:
            params = PARAM_MODELS[tool].model_validate(intent.params, strict=True)
        except ValidationError as exc:
            raise ConstraintViolation(
                f"{tool} params refused: {format_validation_error(exc)}",
                details={"tool": tool},
            ) from exc
        cons = _claim(claims, "cons")
        if not isinstance(cons, Mapping):
            raise TokenInvalid(
                "capability token refused: it carries no constraints",
                details={"reason": "malformed"},
            )
        constraints = self._constraints(tool, cons)
        return self._runners[tool](params, constraints, session)

    def _constraints(self, tool: str, cons: Mapping[str, Any]) -> BaseModel:
        """The tool's constraints model validated from the token's signed `cons` claim, once
        per distinct claim: keyed by its canonical bytes (a bounded LRU), so equal claims share
        one model. Tools only read the model. A claim without a canonical form is validated
        every time, uncached."""
        key: tuple[str, bytes] | None
        try:
            key = (tool, orjson.dumps(dict(cons), option=orjson.OPT_SORT_KEYS))
        except (orjson.JSONEncodeError, TypeError):
            key = None
        if key is not None:
            with self._cons_lock:
                hit = self._cons_cache.get(key)
                if hit is not None:
                    self._cons_cache.move_to_end(key)
                    return hit
        try:
            constraints = CONSTRAINT_MODELS[tool].model_validate(dict(cons))
        except ValidationError as exc:
            raise ConstraintViolation(
                f"the token's {tool} constraints are invalid, so nothing is allowed: "
                f"{format_validation_error(exc)}",
                details={"tool": tool},
            ) from exc
        if key is not None:
            with self._cons_lock:
                self._cons_cache[key] = constraints
                while len(self._cons_cache) > CONSTRAINT_CACHE_SIZE:
                    self._cons_cache.popitem(last=False)
        return constraints

    # -- dispatch ------------------------------------------------------------------------

    @staticmethod
    def _workspace(session: Session) -> str:
        ws = session.workspace
        if not isinstance(ws, str) or not ws.startswith("/"):
            raise ConstraintViolation(
                f"session {session.id} has no absolute workspace; file tools are unavailable"
            )
        return ws

    def _file_read(self, params: Any, constraints: Any, session: Session) -> dict[str, Any]:
        from .files import run_file_read

        return run_file_read(params, constraints, workspace=self._workspace(session))

    def _file_write(self, params: Any, constraints: Any, session: Session) -> dict[str, Any]:
        from .files import run_file_write

        return run_file_write(params, constraints, workspace=self._workspace(session))

    def _http_fetch(self, params: Any, constraints: Any, session: Session) -> dict[str, Any]:
        from .http import run_http_fetch

        return run_http_fetch(params, constraints, secrets=self.secrets)

    def _shell_exec(self, params: Any, constraints: Any, session: Session) -> dict[str, Any]:
        from .shell import run_shell_exec

        return run_shell_exec(params, constraints, workspace=self._workspace(session))

    def _docker_run(self, params: Any, constraints: Any, session: Session) -> dict[str, Any]:
        try:
            from .containers import ContainerOwner
            from .docker import load_sdk, run_docker

            load_sdk()
        except ImportError as exc:
            raise ToolError(f"docker.run is not available: {exc}") from exc
        owner = None
        if self.data_dir is not None:
            owner = ContainerOwner(self.data_dir, self.engine_instance, session.id)
        return run_docker(
            params,
            constraints,
            runtime=self.docker_runtime,
            skill_check=self.skill_verifier,
            owner=owner,
        )

    def _mcp_call(self, params: Any, constraints: Any, session: Session) -> dict[str, Any]:
        return run_mcp_call(params, constraints, self.mcp)

    def close(self) -> None:
        """Stop what the broker keeps running (upstream MCP servers)."""
        if self.mcp is not None:
            self.mcp.close()

    def reap_leftover_containers(self) -> list[dict[str, Any]]:
        """Blocking: remove the containers earlier instances of this engine left behind (a
        crash); what was removed, for `tool.reaped` events. Nothing when Docker is absent."""
        if self.data_dir is None:
            return []
        try:
            from .docker import reap_leftovers

            return reap_leftovers(self.data_dir, keep_engine=self.engine_instance)
        except ImportError:
            return []  # no Docker SDK: no container can have been made
        except ToolError:
            return []  # no Docker engine answers now; the watchdogs still remove theirs
