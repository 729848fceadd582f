#!/usr/bin/python3
"""Test helper: runs a Deno-kernel notebook or an interrupt experiment and
prints, as one JSON object, what a frontend saw.

  _kernel_messages.py run NOTEBOOK
      Executes the notebook with the settling nbclient runner of
      scripts/run_notebooks.py and records every display_data and
      update_display_data message (cell, type, display_id, text, html), plus
      the cells' final outputs.

  _kernel_messages.py interrupt FOLDER SETUP_CODE SLOW_CODE AFTER_CODE DELAY
      Starts the kernel in FOLDER with jupyter_client, runs SETUP_CODE, then
      SLOW_CODE; after DELAY seconds sends an interrupt (by message or signal,
      as the kernelspec says), and reports the slow cell's reply, whether the
      kernel is alive, and what AFTER_CODE returns (or that it timed out).

The kernelspec is whatever JUPYTER_PATH points at (the test writes one).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))

import nbformat  # noqa: E402
from run_notebooks import SettlingNotebookClient  # noqa: E402


class RecordingClient(SettlingNotebookClient):
    def __init__(self, nb, **kwargs):
        super().__init__(nb, **kwargs)
        self.seen = []

    def process_message(self, msg, cell, cell_index):
        kind = msg["msg_type"]
        if kind in ("display_data", "update_display_data"):
            content = msg["content"]
            self.seen.append({
                "cell": cell_index,
                "type": kind,
                "display_id": content.get("transient", {}).get("display_id"),
                "text": content.get("data", {}).get("text/plain"),
                "html": content.get("data", {}).get("text/html"),
                "at": time.monotonic(),
            })
        return super().process_message(msg, cell, cell_index)


def run(path):
    nb = nbformat.read(path, as_version=4)
    client = RecordingClient(
        nb,
        kernel_name="deno",
        timeout=180,
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
    )
    client.execute()
    return {
        "messages": client.seen,
        "outputs": [cell.get("outputs", []) for cell in nb.cells],
    }


def wait_reply(kc, msg_id, timeout, km=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if km is not None and not km.is_alive():
            return None
        try:
            reply = kc.get_shell_msg(timeout=min(0.5, max(0.1, deadline - time.monotonic())))
        except Exception:
            continue
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]
    return None


def result_of(kc, msg_id, timeout, seen=None):
    """The execute_result text of a cell, read from iopub until idle; the
    cell's other iopub messages go to `seen` (type and a short summary), so
    that a report shows what the kernel sent instead."""
    deadline = time.monotonic() + timeout
    text = None
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if seen is not None:
            content = msg["content"]
            seen.append(kind + ":" + json.dumps(content.get("execution_state") or content.get("data") or content.get("text") or content.get("evalue") or "")[:200])
        if kind == "execute_result":
            text = msg["content"]["data"].get("text/plain")
        if kind == "status" and msg["content"]["execution_state"] == "idle":
            return text
    return text


def reply_summary(reply):
    if reply is None:
        return None
    return {
        "status": reply.get("status"),
        "ename": reply.get("ename"),
        "evalue": reply.get("evalue"),
    }


def interrupt(folder, setup, slow, after, delay):
    """Waits are generous (a cold cache, a loaded machine): each returns as
    soon as its reply comes. AFTER_CODE is tried up to twelve times until it
    gives a result: after an interrupt by message, Deno's kernel (2.9.6) can
    answer the next cells with an ok reply but no execute_result (found: one
    to three such cells on a loaded machine; the kernel's limitation, not
    attnscope's). Each attempt's iopub messages go in the report; a lost
    state would fail every attempt."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="deno")
    km.start_kernel(cwd=folder)
    kc = km.client()
    kc.start_channels()
    report = {"interrupt_mode": km.kernel_spec.interrupt_mode}
    try:
        kc.wait_for_ready(timeout=300)
        setup_id = kc.execute(setup)
        setup_reply = wait_reply(kc, setup_id, 600, km)
        report["setup"] = (setup_reply or {}).get("status")
        report["setup_reply"] = reply_summary(setup_reply)
        slow_id = kc.execute(slow)
        time.sleep(delay)
        t0 = time.monotonic()
        km.interrupt_kernel()
        reply = wait_reply(kc, slow_id, 300, km)
        report["slow_reply"] = reply_summary(reply)
        report["slow_reply_s"] = round(time.monotonic() - t0, 2)
        time.sleep(0.5)
        report["alive"] = km.is_alive()
        if report["alive"]:
            report["after_attempts"] = []
            for attempt in range(12):
                if attempt:
                    time.sleep(0.3)
                after_id = kc.execute(after)
                t1 = time.monotonic()
                after_reply = wait_reply(kc, after_id, 300, km)
                seen = []
                result = result_of(kc, after_id, 60, seen)
                report["after_attempts"].append({
                    "reply": reply_summary(after_reply),
                    "result": result,
                    "iopub": seen,
                    "s": round(time.monotonic() - t1, 2),
                })
                report["after_status"] = None if after_reply is None else after_reply.get("status")
                report["after_result"] = result
                if result is not None or not km.is_alive():
                    break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return report


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "run":
        out = run(sys.argv[2])
    else:
        folder, setup, slow, after, delay = sys.argv[2:7]
        out = interrupt(folder, setup, slow, after, float(delay))
    print(json.dumps(out))
