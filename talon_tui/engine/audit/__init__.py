"""The tamper-evident audit log (DESIGN section 5).

- `log`: the writer (`AuditLog`): hash chain, group commit, signed checkpoints, HEAD.
- `index`: the line format on disk, streaming reads and the seq/run/session index.
- `errors`: the log's exceptions.
- `verify`: `verify_log`, parallel and constant-memory (its fast path is `_fastpath`).
- `checkpoint`: the check applied to every signed checkpoint.
- `linescan`: a byte-offset line index built tail first, for viewers.
- `replay`: re-deciding a recorded run under another policy; `runs`: the run projection and
  how outputs are recorded.
"""

__all__ = ["checkpoint", "errors", "index", "linescan", "log", "replay", "runs", "verify"]
