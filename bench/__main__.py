"""Run benchmarks: `python -m bench` runs every module in bench/ that has a main(); names select some."""

import importlib
import pkgutil
import sys

import bench


def main(argv: list[str]) -> None:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))
    selected = argv or names
    unknown = set(selected) - set(names)
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; choose from {', '.join(names)}")
    for name in selected:
        module = importlib.import_module(f"bench.{name}")
        if hasattr(module, "main"):
            print(f"== bench/{name}.py ==", flush=True)
            module.main()


if __name__ == "__main__":
    main(sys.argv[1:])
