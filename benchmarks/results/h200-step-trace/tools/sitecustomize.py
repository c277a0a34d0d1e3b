"""Step trace for serve's decode thread (diagnostic, not product code): per Engine.step and Scheduler loop turn,
wall and thread-CPU time of each phase. Active when STEP_TRACE_DIR is set; dumps trace-<pid>.json at exit.

Variants (env): TRACE_GILKEEP_DECODE=1 calls llama_decode without releasing the GIL.
"""
import os

if os.environ.get("STEP_TRACE_DIR"):
    import atexit
    import ctypes
    import json
    import sys
    import threading
    import time

    _pc, _tt = time.perf_counter, time.thread_time
    _steps = []
    _cur = {}
    _acc = {}
    _epoch = [0]

    def _add(key, w, c):
        a = _acc.setdefault(key, [0.0, 0.0, 0])
        a[0] += w
        a[1] += c
        a[2] += 1

    def _timed(key, f):
        def g(*a, **k):
            w0, c0 = _pc(), _tt()
            try:
                return f(*a, **k)
            finally:
                _add(key, _pc() - w0, _tt() - c0)
        g.__wrapped__ = f
        return g

    def _patch():
        import llama_cpp as lc

        from qwenctl.backends import generation as gen
        from qwenctl.backends import scheduler as sch

        if os.environ.get("TRACE_GILKEEP_DECODE"):
            f = lc.llama_decode
            keep = ctypes.PYFUNCTYPE(f.restype, *f.argtypes)(ctypes.cast(f, ctypes.c_void_p).value)
            lc.llama_decode = keep
        lc.llama_synchronize = _timed("sync", lc.llama_synchronize)
        lc.llama_decode = _timed("decode", lc.llama_decode)
        gen.Engine._collect = _timed("collect", gen.Engine._collect)
        gen.Engine._submit = _timed("submit", gen.Engine._submit)
        gen.Engine._accept = _timed("accept", gen.Engine._accept)
        step = gen.Engine.step
        init = gen.Engine.__init__

        def traced_init(self, *a, **k):
            _epoch[0] += 1
            init(self, *a, **k)

        gen.Engine.__init__ = traced_init

        def traced_step(self):
            _acc.clear()
            busy = sum(1 for s in self.slots if s.busy)
            w0, c0 = _pc(), _tt()
            out = step(self)
            w1, c1 = _pc(), _tt()
            rec = {"t": w0, "e": _epoch[0], "busy": busy, "n": len(out), "step": [w1 - w0, c1 - c0]}
            try:
                rec["reused"] = lc.llama_perf_context(self.ctx).n_reused
            except Exception:  # noqa: BLE001 - a diagnostic
                pass
            rec.update({k: v[:2] for k, v in _acc.items()})
            _steps.append(rec)
            return out

        gen.Engine.step = traced_step
        deliver = sch.Scheduler._deliver

        def traced_deliver(self, slot, tick):
            w0, c0 = _pc(), _tt()
            deliver(self, slot, tick)
            if _steps:
                d = _steps[-1].setdefault("deliver", [0.0, 0.0])
                d[0] += _pc() - w0
                d[1] += _tt() - c0

        sch.Scheduler._deliver = traced_deliver

    def _threads():
        out = {}
        names = {t.native_id: t.name for t in threading.enumerate()}
        tck = os.sysconf("SC_CLK_TCK")
        for tid in os.listdir("/proc/self/task"):
            try:
                f = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
                out[names.get(int(tid), tid)] = (int(f[11]) + int(f[12])) / tck
            except OSError:
                pass
        return out

    def _dump():
        path = os.path.join(os.environ["STEP_TRACE_DIR"], f"trace-{os.getpid()}.json")
        with open(path, "w") as fh:
            json.dump({"argv": sys.argv, "variant": {k: v for k, v in os.environ.items() if k.startswith("TRACE_")},
                       "threads_cpu_s": _threads(), "switchinterval": sys.getswitchinterval(), "steps": _steps}, fh)

    import importlib.abc
    import importlib.machinery

    class _Hook(importlib.abc.MetaPathFinder):
        """Patch once qwenctl.backends.generation is imported."""

        def find_spec(self, name, path, target=None):
            if name != "qwenctl.backends.generation":
                return None
            sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            loader = spec.loader
            orig = loader.exec_module

            def exec_module(module):
                orig(module)
                _patch()

            loader.exec_module = exec_module
            return spec

    def _cpus(text):
        out = set()
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
        return out

    if "serve" in sys.argv and os.environ.get("TRACE_PIN_SERVER"):
        os.sched_setaffinity(0, _cpus(os.environ["TRACE_PIN_SERVER"]))
    elif os.environ.get("TRACE_PIN_OTHERS"):
        os.sched_setaffinity(0, _cpus(os.environ["TRACE_PIN_OTHERS"]))

    if any("serve" == a for a in sys.argv) or os.environ.get("TRACE_ANY"):
        sys.meta_path.insert(0, _Hook())
        atexit.register(_dump)
