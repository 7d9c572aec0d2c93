from superpod_sandbox.apiserver.testing import sandbox, sandbox_thread  # noqa: F401
