"""Ploomber projects as workstack pipelines: ``pipeline.yaml`` read, run as Ploomber runs it.

A Ploomber project keeps working unchanged: its ``tasks.py`` functions and its scripts are
called the way Ploomber calls them (read from Ploomber 0.23's ``spec/taskspec.py``,
``tasks/tasks.py`` and ``tasks/notebook.py``), so nothing imports Ploomber:

- a function task (``source: tasks.get``) is called as ``get(product, upstream, **params)``:
  ``product`` is the path of its product, or a dict of paths when ``product`` is a mapping;
  ``upstream`` (passed only when the task has upstream tasks) maps each upstream task's name
  to its product. Its upstream tasks are the names it subscripts ``upstream`` with in its
  source (``upstream['get']``), found by reading the source, as Ploomber's
  ``extract_upstream`` does, or the task's ``upstream`` list when ``meta.extract_upstream``
  is false.
- a script (``source: fit.py``) declares ``upstream`` in its cell tagged ``parameters``; a
  cell assigning ``upstream``, ``product`` (as strings) and ``params`` is added after it. With
  ``class: ScriptRunner`` it runs as a plain Python script; otherwise (Ploomber's default for
  scripts, and for ``.ipynb`` notebooks) it runs as a notebook through papermill, and the
  executed notebook is written to its ``nb`` product (converted by nbconvert when that is not
  ``.ipynb``). Notebooks need papermill, ipykernel and nbconvert (and jupytext for ``.py``)
  in the workload's requirements.

Task names become step names (``clean_data`` -> ``clean-data``, a DNS-1123 label for Argo).
Products are paths relative to the pipeline's data root (``out/<workload>`` locally, the
stack's storage on a cluster) instead of the project folder. A spec that uses what this does
not support (``grid``, hooks, clients, serializers, SQL and shell tasks, ``env.yaml``
placeholders, absolute products) is refused with the key and what is allowed.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from workstack.sdk.pipeline import Pipeline, PipelineError, Runner, Step, StepError

__all__ = ["read_pipeline_yaml", "runner"]

_TOP_KEYS = ("tasks", "meta", "executor")
_META_KEYS = {
    "extract_upstream": "true or false",
    "extract_product": "false (products are declared in pipeline.yaml)",
    "product_default_class": "File for every task class",
    "product_relative_to_source": "false",
    "jupyter_hot_reload": "anything (ignored: it is for Jupyter)",
    "jupyter_functions_as_notebooks": "anything (ignored: it is for Jupyter)",
}
_TASK_KEYS = (
    "source",
    "product",
    "name",
    "params",
    "upstream",
    "class",
    "nbconvert_export_kwargs",
    "static_analysis",
)
_CLASSES = ("PythonCallable", "NotebookRunner", "ScriptRunner")
_SCRIPT_SUFFIXES = (".py", ".ipynb")
# What Ploomber takes for a file rather than a dotted path (spec/taskspec.py, suffix2taskclass).
_FILE_SUFFIXES = (*_SCRIPT_SUFFIXES, ".R", ".r", ".Rmd", ".sql", ".sh")
_PARAMETERS_TAG = re.compile(r"""^#\s*(%%|\+).*tags\s*=\s*\[[^\]]*["']parameters["']""")
_CELL_MARKER = re.compile(r"^#\s*(%%|\+|-)(\s|$)")


def _error(source: Path, where: str, value: object, allowed: str) -> PipelineError:
    return PipelineError(f"{source}: {where}: {value!r} is not allowed; {allowed}")


def read_pipeline_yaml(path: Path) -> Pipeline:
    """Read a Ploomber ``pipeline.yaml`` into a :class:`Pipeline` (nothing is imported).

    Raises:
        PipelineError: The spec cannot be read, uses what is not supported, names a source
            that is not there, or its tasks do not form a valid pipeline. The message names
            the file, the key and what is allowed.
    """
    root = path.parent
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise PipelineError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(document, dict):
        raise _error(path, "pipeline.yaml", document, "expected a mapping with a tasks list")
    for key in document:
        if key not in _TOP_KEYS:
            raise _error(path, str(key), document[key], "allowed keys: " + ", ".join(_TOP_KEYS))
    meta = document.get("meta") or {}
    if not isinstance(meta, dict):
        raise _error(path, "meta", meta, "expected a mapping")
    extract_upstream = _check_meta(path, meta)
    if document.get("executor", "serial") not in ("serial", "parallel"):
        raise _error(path, "executor", document["executor"], "allowed: serial, parallel")
    tasks = document.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise _error(path, "tasks", tasks, "expected a non-empty list of tasks")

    parsed = [
        _read_task(path, root, index, task, extract_upstream) for index, task in enumerate(tasks)
    ]
    names = [task["name"] for task in parsed]
    step_names = {name: _step_name(path, name) for name in names}
    if len(set(step_names.values())) != len(names):
        raise _error(path, "tasks", names, "task names must stay distinct as step names")
    products = {task["name"]: task["product"] for task in parsed}
    steps = []
    for task in parsed:
        upstream = task["upstream"]
        for name in upstream:
            if name not in products:
                raise _error(
                    path,
                    f"task {task['name']!r} upstream",
                    name,
                    "expected the name of a task: " + ", ".join(names),
                )
        inputs: dict[str, str] = {}
        for name in upstream:
            product = products[name]
            if isinstance(product, str):
                inputs[name] = product
            else:
                inputs.update({f"{name}.{key}": value for key, value in product.items()})
        product = task["product"]
        outputs = {"product": product} if isinstance(product, str) else dict(product)
        steps.append(
            Step(
                name=step_names[task["name"]],
                function=task.get("function"),
                script=task.get("script"),
                inputs=inputs,
                outputs=outputs,
                upstream=tuple(step_names[name] for name in upstream),
                params=task["params"],
                convention="ploomber",
                runner=task["runner"],
                nbconvert=task["nbconvert"],
            )
        )
    name = _step_name(path, root.name or "pipeline")
    return Pipeline(name=name, steps=tuple(steps), root=str(root))


def _check_meta(path: Path, meta: dict[str, Any]) -> bool:
    for key, value in meta.items():
        if key not in _META_KEYS:
            raise _error(path, f"meta.{key}", value, "allowed keys: " + ", ".join(_META_KEYS))
    if meta.get("extract_product", False):
        raise _error(path, "meta.extract_product", True, _META_KEYS["extract_product"])
    if meta.get("product_relative_to_source", False):
        raise _error(
            path,
            "meta.product_relative_to_source",
            True,
            "false: products are relative to the pipeline's data root",
        )
    classes = meta.get("product_default_class") or {}
    if not isinstance(classes, dict) or any(value != "File" for value in classes.values()):
        raise _error(path, "meta.product_default_class", classes, "File for every task class")
    extract = meta.get("extract_upstream", True)
    if not isinstance(extract, bool):
        raise _error(path, "meta.extract_upstream", extract, "true or false")
    return extract


def _step_name(path: Path, name: str) -> str:
    step = name.lower().replace("_", "-").replace(".", "-")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", step) or len(step) > 63:
        raise _error(
            path,
            "task name",
            name,
            "expected letters, digits, '_' and '-' (it becomes a DNS-1123 step name)",
        )
    return step


def _read_task(
    path: Path, root: Path, index: int, task: object, extract_upstream: bool
) -> dict[str, Any]:
    where = f"tasks[{index}]"
    if not isinstance(task, dict):
        raise _error(path, where, task, "expected a mapping with source and product")
    for key in task:
        if key not in _TASK_KEYS:
            raise _error(
                path, f"{where}.{key}", task[key], "allowed keys: " + ", ".join(_TASK_KEYS)
            )
    source = task.get("source")
    if not isinstance(source, str) or not source:
        raise _error(path, f"{where}.source", source, "expected tasks.function or a script path")
    where = f"task {source!r}"
    product = _read_product(path, where, task.get("product"))
    params = task.get("params") or {}
    if not isinstance(params, dict):
        raise _error(path, f"{where} params", params, "expected a mapping")
    declared = task.get("upstream") or []
    if isinstance(declared, str):
        declared = [declared]
    if not isinstance(declared, list) or not all(isinstance(n, str) for n in declared):
        raise _error(path, f"{where} upstream", declared, "expected a list of task names")
    if extract_upstream and declared:
        raise _error(
            path,
            f"{where} upstream",
            declared,
            "not allowed while meta.extract_upstream is true (the default): upstream tasks "
            "are read from the source; set meta.extract_upstream: false to list them here",
        )
    nbconvert = task.get("nbconvert_export_kwargs") or {}
    if not isinstance(nbconvert, dict):
        raise _error(path, f"{where} nbconvert_export_kwargs", nbconvert, "expected a mapping")
    class_name = task.get("class")
    if class_name is not None and class_name not in _CLASSES:
        raise _error(path, f"{where} class", class_name, "allowed: " + ", ".join(_CLASSES))
    parsed: dict[str, Any] = {
        "product": product,
        "params": params,
        "declared_upstream": declared,
        "nbconvert": nbconvert,
    }
    suffix = Path(source).suffix
    if suffix in _FILE_SUFFIXES or "/" in source:
        if suffix not in _SCRIPT_SUFFIXES:
            raise _error(
                path,
                f"{where} source",
                source,
                "scripts must be .py or .ipynb (SQL, shell and R tasks are not supported)",
            )
        script = (root / source).resolve()
        if not script.is_file() or not script.is_relative_to(root.resolve()):
            raise _error(path, f"{where} source", source, "no such script in the project folder")
        notebook = class_name != "ScriptRunner"
        if class_name == "PythonCallable":
            raise _error(
                path, f"{where} class", class_name, "a script is a NotebookRunner or ScriptRunner"
            )
        if notebook and (isinstance(product, str) or "nb" not in product):
            raise _error(
                path,
                f"{where} product",
                product,
                "a script run as a notebook needs a mapping with an 'nb' key for the executed "
                "notebook (or declare class: ScriptRunner to run it as a plain script)",
            )
        if not notebook and suffix == ".ipynb":
            raise _error(path, f"{where} class", class_name, "ScriptRunner takes .py scripts")
        if not _parameters_cell(script):
            raise _error(
                path,
                f"{where} source",
                source,
                'a script needs a cell tagged parameters (# %% tags=["parameters"]) with '
                "upstream = [...] (or None) and product = None",
            )
        parsed.update(
            kind="script",
            name=task.get("name") or Path(source).stem,
            script=Path(source).as_posix(),
            runner="notebook" if notebook else "python",
            upstream=_script_upstream(path, script) if extract_upstream else declared,
        )
        return parsed
    if class_name not in (None, "PythonCallable"):
        raise _error(path, f"{where} class", class_name, "a function task is a PythonCallable")
    module, _, function = source.rpartition(".")
    if not module or not function.isidentifier():
        raise _error(path, f"{where} source", source, "expected a dotted path: module.function")
    # Read in every case: it also checks that the function is there.
    found = _function_upstream(path, root, where, module, function)
    parsed.update(
        kind="function",
        name=task.get("name") or function,
        function=f"{module}:{function}",
        runner="python",
        upstream=found if extract_upstream else declared,
    )
    return parsed


def _read_product(path: Path, where: str, product: object) -> str | dict[str, str]:
    def check(value: object, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise _error(path, key, value, "expected a path relative to the project")
        if "{{" in value:
            raise _error(
                path,
                key,
                value,
                "env.yaml placeholders are not supported; products are relative to the "
                "pipeline's data root, so write a relative path",
            )
        if Path(value).is_absolute() or ".." in Path(value).parts:
            raise _error(path, key, value, "expected a relative path without '..'")
        return Path(value).as_posix()

    if isinstance(product, dict):
        if not product:
            raise _error(path, f"{where} product", product, "expected at least one product")
        return {str(key): check(value, f"{where} product.{key}") for key, value in product.items()}
    return check(product, f"{where} product")


def _function_upstream(path: Path, root: Path, where: str, module: str, function: str) -> list[str]:
    """The names ``function`` subscripts ``upstream`` with, from its source, without importing."""
    source_file = _module_file(root, module)
    if source_file is None:
        raise _error(
            path, f"{where} source", f"{module}.{function}", f"module {module} is not in {root}"
        )
    tree = ast.parse(source_file.read_text(encoding="utf-8"), str(source_file))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
            return _upstream_names(node)
    raise _error(
        path, f"{where} source", f"{module}.{function}", f"{source_file} has no {function}"
    )


def _upstream_names(node: ast.AST) -> list[str]:
    names: list[str] = []
    for child in ast.walk(node):
        if (
            isinstance(child, ast.Subscript)
            and isinstance(child.value, ast.Name)
            and child.value.id == "upstream"
            and isinstance(child.slice, ast.Constant)
            and isinstance(child.slice.value, str)
            and child.slice.value not in names
        ):
            names.append(child.slice.value)
    return sorted(names)


def _module_file(root: Path, module: str) -> Path | None:
    relative = Path(*module.split("."))
    for candidate in (root / f"{relative}.py", root / relative / "__init__.py"):
        if candidate.is_file():
            return candidate
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _parameters_cell(script: Path) -> str:
    """The code of the cell tagged ``parameters`` (percent or light format, or a notebook)."""
    if script.suffix == ".ipynb":
        import json

        notebook = json.loads(script.read_text(encoding="utf-8"))
        for cell in notebook.get("cells", []):
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                source = cell.get("source", "")
                return "".join(source) if isinstance(source, list) else str(source)
        return ""
    lines = script.read_text(encoding="utf-8").splitlines()
    start, end = _parameters_lines(lines)
    return "\n".join(lines[start:end]) if start is not None else ""


def _parameters_lines(lines: list[str]) -> tuple[int | None, int]:
    """Line span of the parameters cell's code: (first line, line after the last)."""
    for number, line in enumerate(lines):
        if _PARAMETERS_TAG.match(line):
            end = number + 1
            while end < len(lines) and not _CELL_MARKER.match(lines[end]):
                end += 1
            return number + 1, end
    return None, 0


def _script_upstream(path: Path, script: Path) -> list[str]:
    code = _parameters_cell(script)
    if not code:
        raise _error(
            path,
            f"task {script.name!r}",
            str(script.name),
            'a script needs a cell tagged parameters (# %% tags=["parameters"]) with '
            "upstream = [...] (or None) and product = None",
        )
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        raise _error(
            path, f"{script.name} parameters cell", code, f"invalid Python ({error})"
        ) from None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "upstream"
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                break
            if value is None:
                return []
            names = isinstance(value, list | tuple | set | dict)
            if names and all(isinstance(v, str) for v in value):
                return sorted(value)
            break
    raise _error(
        path,
        f"{script.name} parameters cell",
        code,
        "it must assign upstream a list of task names (or None)",
    )


# --- running: what each step does, locally or in its pod ------------------------------------


def _products(step: Step, outputs: Mapping[str, Path]) -> Path | dict[str, Path]:
    if list(step.outputs) == ["product"]:
        return outputs["product"]
    return dict(outputs)


def _upstream(step: Step, inputs: Mapping[str, Path]) -> dict[str, Any]:
    upstream: dict[str, Any] = {}
    for key, value in inputs.items():
        task, _, product = key.partition(".")
        if product:
            upstream.setdefault(task, {})[product] = value
        else:
            upstream[task] = value
    return upstream


def runner(step: Step, root: Path | None, workdir: Path | None) -> Runner:
    """How to run a Ploomber-convention step: its function, script or notebook."""
    if step.function is not None:
        from workstack.sdk.callables import load_callable

        if root is not None and str(root) not in sys.path:
            sys.path.insert(0, str(root))
        function = load_callable(step.function)

        def call(inputs: dict[str, Path], outputs: dict[str, Path]) -> Any:
            keywords: dict[str, Any] = {"product": _products(step, outputs), **step.params}
            if inputs:
                keywords["upstream"] = _upstream(step, inputs)
            return function(**keywords)

        return call
    assert step.script is not None
    script = (root or Path.cwd()) / step.script
    where = workdir or root

    def run_script(inputs: dict[str, Path], outputs: dict[str, Path]) -> None:
        parameters: dict[str, Any] = {
            "upstream": _as_strings(_upstream(step, inputs)) or None,
            "product": _as_strings(_products(step, outputs)),
            **step.params,
        }
        if step.runner == "notebook":
            _run_notebook(step, script, parameters, outputs["nb"], where)
        else:
            _run_script(step, script, parameters, where)

    return run_script


def _as_strings(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _as_strings(item) for key, item in value.items()}
    return str(value)


def _run_script(step: Step, script: Path, parameters: dict[str, Any], cwd: Path | None) -> None:
    """Run a script as Ploomber's ScriptRunner does: parameters cell filled in, plain python."""
    from workstack.sdk.commands import run_command

    lines = script.read_text(encoding="utf-8").splitlines()
    _, end = _parameters_lines(lines)
    injected = ['# %% tags=["injected-parameters"]'] + [
        f"{name} = {value!r}" for name, value in parameters.items()
    ]
    code = "\n".join([*lines[:end], *injected, *lines[end:]]) + "\n"
    with tempfile.TemporaryDirectory() as folder:
        rendered = Path(folder) / script.name
        rendered.write_text(code, encoding="utf-8")
        result = run_command(f"python {rendered}", cwd=cwd)
    if result.returncode != 0:
        raise StepError(
            f"step {step.name!r}: {script.name} exited {result.returncode}: {result.output[-800:]}"
        )


def _run_notebook(
    step: Step, script: Path, parameters: dict[str, Any], target: Path, cwd: Path | None
) -> None:
    """Run a script or notebook with papermill and write the executed copy to ``target``."""
    try:
        import nbformat
        import papermill

        if script.suffix == ".py":
            import jupytext
    except ModuleNotFoundError as error:
        raise StepError(
            f"step {step.name!r} runs {script.name} as a notebook, which needs papermill, "
            "ipykernel and nbconvert (and jupytext for a .py script), and "
            f"{error.name} is not installed: add them to the workload's requirements, or "
            "declare `class: ScriptRunner` in pipeline.yaml to run it as a plain script"
        ) from None
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "source.ipynb"
        executed = Path(folder) / "executed.ipynb"
        notebook = (
            jupytext.read(script) if script.suffix == ".py" else nbformat.read(script, as_version=4)
        )
        # A script has no kernel metadata; papermill needs to know the language.
        notebook.metadata.setdefault(
            "kernelspec", {"name": "python3", "language": "python", "display_name": "Python 3"}
        )
        notebook.metadata.setdefault("language_info", {"name": "python"})
        nbformat.write(notebook, source)
        try:
            papermill.execute_notebook(
                str(source),
                str(executed),
                parameters=parameters,
                kernel_name="python3",
                cwd=str(cwd) if cwd else None,
                progress_bar=False,
                log_output=False,
            )
        except papermill.PapermillExecutionError as error:
            raise StepError(
                f"step {step.name!r}: {script.name} failed in cell {error.exec_count}: "
                f"{error.ename}: {error.evalue}"
            ) from None
        if target.suffix == ".ipynb":
            shutil.copyfile(executed, target)
            return
        _convert(step, executed, target)


def _convert(step: Step, executed: Path, target: Path) -> None:
    import nbconvert
    import nbformat

    exporters = {".html": "html", ".md": "markdown", ".py": "python", ".txt": "script"}
    name = exporters.get(target.suffix)
    if name is None:
        raise StepError(
            f"step {step.name!r}: nb product {target.name!r} must end in .ipynb or one of "
            + ", ".join(exporters)
        )
    exporter = nbconvert.get_exporter(name)(**step.nbconvert)
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    target.write_text(body, encoding="utf-8")
