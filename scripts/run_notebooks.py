#!/usr/bin/python3
"""Execute Jupyter notebooks headlessly with nbclient, keeping late outputs.

Deno's Jupyter kernel can publish `status: idle` on iopub before the last
output of a cell (a chart's display_data, a console.log line). Stock
nbclient (and so `jupyter nbconvert --execute`) stops reading at idle and
drops whatever comes after, at random. This runner keeps reading iopub for a
short quiet window after idle, so every output of the cell is collected.

Usage:
  /usr/bin/python3 scripts/run_notebooks.py [options] NOTEBOOK [NOTEBOOK ...]

Each notebook is executed with its own folder as the kernel's working
directory (so `../mod.ts` imports resolve as in an editor) and written back
in place, or to --output-dir. A cell that errors stops that notebook: the
runner prints which cell, the error and its traceback, exits with status 1,
and (in place) leaves the committed notebook untouched; with --output-dir
the partly executed notebook is still written there for inspection.

Needs nbclient and nbformat (Debian: python3-nbclient, jupyter-client);
run it with /usr/bin/python3, since a pyenv python3 earlier on PATH usually
lacks them.
"""

import argparse
import asyncio
import os
import re
import sys
import time

try:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionComplete, CellExecutionError
    from nbclient.util import ensure_async
    from jupyter_client.kernelspec import NoSuchKernel
except ImportError as error:  # pragma: no cover - depends on the machine
    sys.stderr.write(
        f"Cannot run notebooks: {error}; install Jupyter from Debian "
        "(apt-get install jupyter-nbconvert python3-nbclient jupyter-client) "
        "and run this script with /usr/bin/python3\n"
    )
    sys.exit(2)

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class SettlingNotebookClient(NotebookClient):
    """NotebookClient that keeps reading iopub for a quiet window after idle.

    `settle` is how long the cell's iopub stream must stay quiet after idle
    before the cell counts as done; `settle_max` caps the total wait so a
    chatty kernel cannot stall the run.
    """

    def __init__(self, nb, settle=0.25, settle_max=3.0, **kwargs):
        super().__init__(nb, **kwargs)
        self.settle = settle
        self.settle_max = settle_max

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        assert self.kc is not None
        while True:
            msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=None))
            if msg["parent_header"].get("msg_id") != parent_msg_id:
                continue
            try:
                self.process_message(msg, cell, cell_index)
            except CellExecutionComplete:
                break
        await self._drain_late_outputs(parent_msg_id, cell, cell_index)

    async def _drain_late_outputs(self, parent_msg_id, cell, cell_index):
        # Outputs the kernel sends after idle belong to this cell as long as
        # their parent is this cell's execute request.
        deadline = time.monotonic() + self.settle_max
        quiet_until = time.monotonic() + self.settle
        while True:
            now = time.monotonic()
            wait = min(quiet_until, deadline) - now
            if wait <= 0:
                return
            try:
                msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=wait))
            except Exception:  # queue.Empty: the window passed quietly
                return
            if msg["parent_header"].get("msg_id") != parent_msg_id:
                continue
            try:
                self.process_message(msg, cell, cell_index)
            except CellExecutionComplete:
                pass  # a second idle changes nothing
            quiet_until = time.monotonic() + self.settle


def error_outputs(nb):
    """(cell index, output) for every error output in the notebook."""
    return [
        (index, output)
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]


def describe_error(path, nb, index, ename, evalue, traceback):
    source = nb.cells[index].source if index is not None else ""
    first = source.strip().splitlines()[0] if source.strip() else ""
    where = f"cell {index}" if index is not None else "a cell"
    text = ANSI.sub("", "\n".join(traceback or []))
    return (
        f"Cannot execute {path}: {where} ({first!r}) raised {ename}: "
        f"{ANSI.sub('', evalue)}; fix the cell or the code it calls and rerun\n"
        f"{text}\n"
    )


def strip_ansi_outputs(nb):
    """Remove terminal color codes a kernel without NO_COLOR may emit."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text" in output and isinstance(output["text"], str):
                output["text"] = ANSI.sub("", output["text"])
            data = output.get("data", {})
            if isinstance(data.get("text/plain"), str):
                data["text/plain"] = ANSI.sub("", data["text/plain"])


def execute(path, args):
    """Execute one notebook; returns True when every cell ran cleanly."""
    nb = nbformat.read(path, as_version=4)
    folder = os.path.dirname(os.path.abspath(path))
    kernel = args.kernel or nb.metadata.get("kernelspec", {}).get("name") or "deno"
    client = SettlingNotebookClient(
        nb,
        settle=args.settle,
        timeout=args.timeout,
        startup_timeout=args.startup_timeout,
        kernel_name=kernel,
        record_timing=False,
        resources={"metadata": {"path": folder}},
    )
    started = time.monotonic()
    failure = None
    try:
        client.execute()
    except CellExecutionError as error:
        index = next(
            (i for i, c in enumerate(nb.cells) if c is getattr(error, "cell", None)),
            None,
        )
        errors = error_outputs(nb)
        if errors:
            index, output = errors[0]
            failure = describe_error(
                path, nb, index, output.get("ename"), output.get("evalue", ""),
                output.get("traceback"),
            )
        else:
            failure = describe_error(path, nb, index, error.ename, error.evalue, [str(error)])
    except NoSuchKernel:
        failure = (
            f"Cannot execute {path}: no Jupyter kernel named {kernel!r}; run "
            "`deno task kernel` (or pass --kernel NAME)\n"
        )
    except Exception as error:  # timeouts, a dead kernel
        failure = (
            f"Cannot execute {path}: {type(error).__name__}: {error}; see the "
            "output above, raise --timeout for slow cells\n"
        )
    if failure is None and error_outputs(nb):
        # The kernel can report an error output with an `ok` reply (a
        # rejection after the cell's value was shown): that is a failure too.
        index, output = error_outputs(nb)[0]
        failure = describe_error(
            path, nb, index, output.get("ename"), output.get("evalue", ""),
            output.get("traceback"),
        )
    strip_ansi_outputs(nb)
    seconds = time.monotonic() - started
    target = (
        os.path.join(args.output_dir, os.path.basename(path))
        if args.output_dir
        else path
    )
    # A failed run is kept only where it cannot overwrite the source, and
    # only when some cell ran (there is something to look at).
    keep_partial = args.output_dir and client.code_cells_executed > 0
    if failure is None or keep_partial:
        nbformat.write(nb, target)
    if failure is not None:
        sys.stderr.write(failure)
        if keep_partial:
            sys.stderr.write(f"partly executed notebook written to {target}\n")
        return False
    cells = sum(1 for c in nb.cells if c.cell_type == "code")
    print(f"executed {path} -> {target}: {cells} code cells in {seconds:.1f} s", flush=True)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Execute notebooks with nbclient, waiting briefly after "
        "idle so the Deno kernel's late outputs are kept."
    )
    parser.add_argument("notebooks", nargs="+", help="notebook files to execute")
    parser.add_argument(
        "--output-dir",
        help="write executed notebooks here instead of in place",
    )
    parser.add_argument(
        "--timeout", type=int, default=180, help="seconds per cell (default 180)"
    )
    parser.add_argument(
        "--startup-timeout",
        type=int,
        default=120,
        help="seconds for the kernel to start (default 120)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=0.25,
        help="quiet seconds on iopub after idle before a cell counts as done "
        "(default 0.25)",
    )
    parser.add_argument(
        "--kernel", help="kernel name (default: the notebook's kernelspec, else deno)"
    )
    args = parser.parse_args(argv)
    missing = [p for p in args.notebooks if not os.path.isfile(p)]
    if missing:
        parser.error(f"cannot execute {', '.join(missing)}: no such file")
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
    ok = True
    for path in args.notebooks:
        ok = execute(path, args) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
