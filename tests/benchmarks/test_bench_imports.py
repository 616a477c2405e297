"""The benchmark modules import each other without a cycle (function-level imports included),
and plots import no benchmark: they take data."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """module -> the benchmarks.* modules it imports anywhere in its body (a package import
    counts as an import of the package's __init__)."""
    modules = {_module_name(p): p for p in BENCH.rglob("*.py") if "results" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_benchmark_modules() -> None:
    graph = _graph()
    assert {"benchmarks.plots", "benchmarks.quality.__main__", "benchmarks.serving.ceiling"} <= set(graph)
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_cycle_finder_finds_a_cycle() -> None:  # the check above can fail
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_plots_take_data() -> None:
    deps = _graph()["benchmarks.plots"]
    assert deps <= {"benchmarks.common", "benchmarks.labels"}, deps
    assert "benchmarks.plots" in _graph()["benchmarks.quality.__main__"]  # quality calls plots


def test_no_http_client_of_our_own() -> None:
    """wrk and locust are the load generators: no module opens HTTP connections by hand for load."""
    for path in BENCH.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "open_connection(" not in text and "import httpx" not in text, path
