"""`pytest_test`: one Bazel py_test per pytest file."""

def pytest_test(name, src, deps = [], data = [], **kwargs):
    native.py_test(
        name = name,
        srcs = ["pytest_runner.py", "conftest.py", src],
        main = "pytest_runner.py",
        args = ["$(location %s)" % src],
        data = data,
        deps = deps,
        python_version = "PY3",
        **kwargs
    )
