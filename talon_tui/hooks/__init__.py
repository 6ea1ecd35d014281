"""Agent hooks: Claude Code's and Codex's own tools judged by Talon (`talon hook`).

- `bash`: a Bash command line split into the simple commands it runs, or refused.
- `mapping`: an agent tool call mapped onto Talon tools; the paths no policy may open.
- `runner`: one hook event in, the agent's answer out, failing closed.
- `jsonio`: `json.loads`/`json.dumps` from the C codec `json` uses, without importing `json`.
- `command`: the hook verb, `talon hook claude-code|codex [options]`: argv in, exit code out.
- `script`: the file the installed hook command runs (`python -I -S script.py hook …`).
- `install`: the agent's hook entries written into its settings and removed again.

This package imports only the standard library (and `engine.core` for hashes and paths):
the hook runs once per tool call, so its start-up is its cost.
"""

__all__ = ["bash", "command", "install", "jsonio", "mapping", "runner", "script"]
