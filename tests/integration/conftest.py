from superpod.sandbox.testing import sandbox, sandbox_thread  # noqa: F401
