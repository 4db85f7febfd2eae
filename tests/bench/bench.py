#!/usr/bin/env python3
"""The toolkit's speed and memory figures against their goals (issues 11 and 20), as one table.

    python3 tests/bench/bench.py [--sets N] [--pairs N]      (root; what `make bench` runs)

Contract: every timed figure is a ratio of two commands run as adjacent pairs, alternating A/B
and B/A, so that load drifting on this shared host hits both sides alike; the table shows the
median of the per-pair ratios with their min-max, and the medians of both sides. The whole set
is measured --sets times (default 2) to show how stable it is. Each command is measured by
`rusage` (tests/bench/rusage.rs), its direct parent: CPU is user + system time of the command and
every descendant it waited for (for `runc run`: runc, its hooks and the container), steadier
than wall time on a busy 2-core host; peak RSS is the kernel's `ru_maxrss` of that direct child.
The batch figure is the wall time of 50 concurrent `runc create`s. Exit status: 0 when every
figure of every set meets its goal, 1 when one does not, 2 when the benchmark itself fails.

Fake hardware comes from tests/fakehw (real runc on cgroup v1 and v2, real libudev on a copy of
a umockdev sysfs tree, no LD_PRELOAD): one long-lived private mount namespace per fixture and
cgroup version, entered with nsenter for each run (not timed). The 64- and 256-render-node
fixtures (8 and 32 MI300X in CPX) are generated here by tests/fixtures/gen.py.
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIB = 1024


class BenchError(Exception):
    pass


def die(msg):
    raise BenchError(msg)


# ------------------------------------------------------------------------------------------------
# set-up


class Namespace:
    """A private mount namespace with fake hardware (run-in-fakehw.sh ... -- sleep), kept alive
    for the whole benchmark; commands enter it with nsenter."""

    def __init__(self, work, fixture, cgroup, key):
        self.name = f"{os.path.basename(fixture)} {cgroup}"
        self.runc_root = f"{work}/runc-{key}"
        self.proc = subprocess.Popen(
            [f"{REPO}/tests/fakehw/run-in-fakehw.sh", "--fixture", fixture, "--cgroup", cgroup,
             "--workdir", f"{work}/fakehw", "--", "sleep", "86400"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while True:
            # run-in-fakehw.sh execs its way to sleep: same pid, new mount namespace.
            try:
                with open(f"/proc/{self.proc.pid}/comm") as f:
                    if f.read().strip() == "sleep":
                        break
            except OSError:
                pass
            if self.proc.poll() is not None:
                die(f"fake hardware {self.name}: {self.proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                die(f"fake hardware {self.name}: not ready after 120 s")
            time.sleep(0.02)

    def argv(self, cmd):
        return ["nsenter", f"--mount=/proc/{self.proc.pid}/ns/mnt", "--"] + cmd

    def close(self):
        if self.proc.poll() is None:
            # Containers a failed or interrupted run left behind (their cgroups live here).
            r = subprocess.run(self.argv(["runc", "--root", self.runc_root, "list", "-q"]),
                               capture_output=True, text=True)
            for cid in r.stdout.split():
                subprocess.run(self.argv(["runc", "--root", self.runc_root, "delete", "--force",
                                          cid]), capture_output=True)
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait()


class Bench:
    def __init__(self, work, sets, pairs):
        self.work, self.sets, self.pairs = work, sets, pairs
        self.bin = f"{REPO}/target/release"
        self.rusage = f"{work}/rusage"
        # cdi generate records what it wrote (for cdi refresh): in the work dir, not the host's
        # /var/lib. The record is part of what generate costs, so it stays in the figure.
        self.env = dict(os.environ, SYSTEMD_DEVICE_VERIFY_SYSFS="0",
                        AMD_CTK_CDI_STATE=f"{work}/cdi-specs.json")
        self.namespaces = []
        self.n = 0

    # -- preparation ------------------------------------------------------------------------------

    def prepare(self):
        for b in ("amd-container-hook", "amd-ctk", "amd-container-runtime"):
            if not os.access(f"{self.bin}/{b}", os.X_OK):
                die(f"{self.bin}/{b} missing: build first (cargo build --release)")
        run(["rustc", "-O", "--edition", "2021", f"{REPO}/tests/bench/rusage.rs",
             "-o", self.rusage])
        for name, gpus in (("cpx64", 8), ("cpx256", 32)):
            run(["python3", f"{REPO}/tests/fixtures/gen.py", "--cpx", str(gpus),
                 f"{self.work}/{name}.umockdev"])
        run([f"{REPO}/tests/fakehw/make-bundle.sh", f"{self.work}/template", "true"])
        env = ["SYSTEMD_DEVICE_VERIFY_SYSFS=0", f"AMD_CTK_CONFIG={self.work}/config.toml"]
        hook = f"{self.bin}/amd-container-hook"
        with open(f"{self.work}/config.toml", "w") as f:
            # hook-path and hook-env: what `cdi generate` registers in the CDI spec.
            f.write(f'[hook]\nlog-file = "{self.work}/hook.log"\n\n'
                    f'[runtime]\nlow-level-runtime = "/bin/true"\n'
                    f'hook-path = "{hook}"\nhook-env = {json.dumps(env)}\n')
        base = json.load(open(f"{self.work}/template/config.json"))
        base["root"]["path"] = f"{self.work}/template/rootfs"
        self.base = base
        def measured(name, cmd):
            """`cmd` as the hook, run by rusage, which appends its line to rss-NAME."""
            return {"path": self.rusage, "env": env,
                    "args": ["rusage", "-o", f"{self.work}/rss-{name}"] + cmd}
        for req, value in (("none", None), ("all", "all"), ("one", "0")):
            for kind, entry in (("plain", None),
                                ("hook", {"path": hook, "env": env,
                                          "args": ["amd-container-hook", "prestart"]}),
                                ("true", {"path": "/bin/true", "args": ["true"], "env": env}),
                                ("rss", measured(f"{req}-rss", [hook, "prestart"])),
                                ("truerss", measured(f"{req}-truerss", ["/bin/true"]))):
                cfg = json.loads(json.dumps(base))
                if value:
                    cfg["process"]["env"].append(f"AMD_VISIBLE_DEVICES={value}")
                if entry:
                    cfg["hooks"] = {"prestart": [entry]}
                os.makedirs(f"{self.work}/{req}-{kind}")
                with open(f"{self.work}/{req}-{kind}/config.json", "w") as f:
                    json.dump(cfg, f, indent=2)
        os.makedirs(f"{self.work}/runtime-bundle")
        self.ns = {}
        for key, fixture, cgroup in (("v2", f"{REPO}/tests/fixtures/mi300x-8.umockdev", "v2"),
                                     ("v1", f"{REPO}/tests/fixtures/mi300x-8.umockdev", "v1"),
                                     ("64", f"{self.work}/cpx64.umockdev", "v2"),
                                     ("256", f"{self.work}/cpx256.umockdev", "v2")):
            self.ns[key] = Namespace(self.work, fixture, cgroup, key)
            self.namespaces.append(self.ns[key])
        self.cdi_bundles()

    def cdi_bundles(self):
        """cdi-plain and cdi-hook: the 8-GPU fixture's `all` device applied to the bundle as a
        CDI engine does (linux.devices, device cgroup rules), from the spec `amd-ctk cdi
        generate` writes there; cdi-hook also carries the spec's hooks (our hook, --cdi)."""
        r = subprocess.run(self.ns["v2"].argv([f"{self.bin}/amd-ctk", "cdi", "generate",
                                               "--output", "-", "--format", "json"]),
                           env=dict(self.env, AMD_CTK_CONFIG=f"{self.work}/config.toml"),
                           capture_output=True)
        if r.returncode != 0:
            die(f"cdi generate for the CDI bundles: {r.stderr.decode().strip()}")
        spec = json.loads(r.stdout)
        edits = spec.get("containerEdits", {})
        nodes = list(edits.get("deviceNodes", []))
        for dev in spec["devices"]:
            if dev["name"] == "all":
                nodes += dev["containerEdits"].get("deviceNodes", [])
        hooks = edits.get("hooks", [])
        if len(nodes) != 17 or not hooks:
            die(f"the CDI spec has {len(nodes)} nodes (want 17) and {len(hooks)} hooks")
        for kind in ("plain", "hook", "true"):
            cfg = json.loads(json.dumps(self.base))
            linux = cfg.setdefault("linux", {})
            rules = linux.setdefault("resources", {}).setdefault("devices", [])
            for n in nodes:
                linux.setdefault("devices", []).append(
                    {k: v for k, v in (("path", n["path"]), ("type", n.get("type", "c")),
                                       ("major", n["major"]), ("minor", n["minor"]),
                                       ("fileMode", n.get("fileMode")), ("uid", n.get("uid")),
                                       ("gid", n.get("gid"))) if v is not None})
                rules.append({"allow": True, "type": "c", "major": n["major"],
                              "minor": n["minor"], "access": "rwm"})
            if kind != "plain":
                for h in hooks:
                    entry = {k: h[k] for k in ("path", "args", "env", "timeout") if k in h}
                    if kind == "true":  # the floor: a process start at each of the hook's stages
                        entry = {"path": "/bin/true", "args": ["true"]}
                    cfg.setdefault("hooks", {}).setdefault(h["hookName"], []).append(entry)
            os.makedirs(f"{self.work}/cdi-{kind}")
            with open(f"{self.work}/cdi-{kind}/config.json", "w") as f:
                json.dump(cfg, f, indent=2)

    def close(self):
        for ns in self.namespaces:
            ns.close()

    # -- one measured command ---------------------------------------------------------------------

    def measure(self, ns, cmd):
        """(wall s, cpu s, maxrss KiB) of cmd, run by rusage inside namespace ns."""
        r = subprocess.run(ns.argv([self.rusage] + cmd), env=self.env, stdin=subprocess.DEVNULL,
                           capture_output=True)
        lines = [ln for ln in r.stderr.decode().splitlines() if ln.startswith("rusage: ")]
        if r.returncode != 0 or not lines:
            die(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.decode().strip()}")
        wall, cpu, rss, _ = (int(x) for x in lines[-1].split()[1:])
        return wall / 1e9, cpu / 1e9, rss

    def runc_run(self, ns, bundle):
        self.n += 1
        return self.measure(ns, ["runc", "--root", ns.runc_root, "run", "--bundle",
                                 f"{self.work}/{bundle}", f"bench{self.n}"])

    def ctk(self, ns, *args):
        return self.measure(ns, [f"{self.bin}/amd-ctk"] + list(args))

    def generate(self, ns, name):
        return self.ctk(ns, "cdi", "generate", "--output", f"{self.work}/{name}.json")

    # -- figures ----------------------------------------------------------------------------------

    def paired(self, a, b, pairs, warmup=3):
        """Ratios b/a of CPU time over adjacent pairs, alternating which runs first."""
        for _ in range(warmup):
            a(), b()
        ra, rb = [], []
        for i in range(pairs):
            if i % 2 == 0:
                x, y = a(), b()
            else:
                y, x = b(), a()
            ra.append(x[1])
            rb.append(y[1])
        return ra, rb

    def batch(self, ns, bundle, count):
        """Wall time of `count` concurrent `runc create`s (the containers are deleted after)."""
        script = (
            "import subprocess, sys, tempfile, time\n"
            "root, bundle, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])\n"
            # stdio to a file, not a pipe: the created container keeps runc's stdio open.
            "errs = [tempfile.TemporaryFile() for _ in range(n)]\n"
            "t0 = time.perf_counter()\n"
            "ps = [subprocess.Popen(['runc', '--root', root, 'create', '--bundle', bundle,\n"
            "      f'{prefix}{i}'], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,\n"
            "      stderr=errs[i]) for i in range(n)]\n"
            "codes = [p.wait() for p in ps]\n"
            "dt = time.perf_counter() - t0\n"
            "for i in range(n):\n"
            "    subprocess.run(['runc', '--root', root, 'delete', '--force', f'{prefix}{i}'],\n"
            "                   capture_output=True)\n"
            "bad = [(e.seek(0), e.read().decode())[1] for c, e in zip(codes, errs) if c != 0]\n"
            "print(dt if not bad else 'FAILED ' + bad[0])\n")
        self.n += 1
        r = subprocess.run(ns.argv(["python3", "-c", script, ns.runc_root,
                                    f"{self.work}/{bundle}", f"batch{self.n}-", str(count)]),
                           env=self.env, capture_output=True)
        out = r.stdout.decode().strip()
        if r.returncode != 0 or out.startswith("FAILED") or not out:
            die(f"batch of {count} runc create ({bundle}): {out} {r.stderr.decode().strip()}")
        return float(out), 0.0, 0

    def hook_alone(self):
        """The hook process itself, run under runc by `rusage -o`: peak RSS (KiB, max) and
        CPU (s, median) over 5 runs per case, plus /bin/true the same way for scale."""
        v1, v2 = self.ns["v1"], self.ns["v2"]
        out = {}
        for key, ns, bundle in (("none", v2, "none-rss"), ("all", v2, "all-rss"),
                                ("all-v1", v1, "all-rss"), ("one", v2, "one-rss"),
                                ("true", v2, "none-truerss")):
            path = f"{self.work}/rss-{bundle}"
            if os.path.exists(path):
                os.remove(path)
            runs = []
            for _ in range(5):
                self.runc_run(ns, bundle)
                with open(path) as f:
                    runs.append(f.read().split()[-4:])
            out[key] = (max(int(r[2]) for r in runs),
                        statistics.median(int(r[1]) for r in runs) / 1e9)
        return out

    def peak_rss(self):
        """Peak RSS (KiB) of amd-ctk (256 nodes) and the runtime entry, max over 3 runs."""
        v2, big = self.ns["v2"], self.ns["256"]
        out = {"ctk": max(self.generate(big, "rss")[2] for _ in range(3))}
        rt = []
        for i in range(3):
            shutil.copy(f"{self.work}/all-plain/config.json", f"{self.work}/runtime-bundle/")
            rt.append(self.measure(v2, ["env", f"AMD_CTK_CONFIG={self.work}/config.toml",
                                        f"{self.bin}/amd-container-runtime", "create",
                                        "--bundle", f"{self.work}/runtime-bundle", f"rt{i}"])[2])
        out["runtime"] = max(rt)
        out["floor"] = max(self.measure(v2, ["/bin/true"])[2] for _ in range(3))
        return out

    def one_set(self):
        p = self.pairs
        v1, v2, n64, n256 = self.ns["v1"], self.ns["v2"], self.ns["64"], self.ns["256"]
        rows = []

        def ratio_row(figure, goal, a, b, unit="ms CPU"):
            """goal None: a figure for scale (info), no verdict."""
            print(f"  measured: {figure}", file=sys.stderr, flush=True)
            ratios = [y / x for x, y in zip(a, b)]
            med = statistics.median(ratios)
            ok = None if goal is None else med <= goal
            rows.append((figure, "-" if goal is None else f"<= {goal:.2f}x",
                         f"{med:.3f}x ({min(ratios):.2f}-{max(ratios):.2f}); "
                         f"{statistics.median(b) * 1e3:.2f} vs {statistics.median(a) * 1e3:.2f} "
                         f"{unit}", ok))

        for cg, ns in (("v2", v2), ("v1", v1)):
            a, b = self.paired(lambda: self.runc_run(ns, "all-plain"),
                               lambda: self.runc_run(ns, "all-hook"), p)
            ratio_row(f"hook, 8 GPUs, cgroup {cg}: runc run CPU vs no hook", 1.10, a, b)
        a, b = self.paired(lambda: self.runc_run(v2, "none-true"),
                           lambda: self.runc_run(v2, "none-hook"), p)
        ratio_row("fast path (no request) vs /bin/true as hook", 1.02, a, b)
        a, b = self.paired(lambda: self.runc_run(v2, "cdi-plain"),
                           lambda: self.runc_run(v2, "cdi-hook"), p)
        ratio_row("CDI: runc run, 8 GPUs' nodes, our --cdi hook vs none", 1.03, a, b)
        a, b = self.paired(lambda: self.runc_run(v2, "cdi-plain"),
                           lambda: self.runc_run(v2, "cdi-true"), p)
        ratio_row("  (CDI: /bin/true at the same stages vs none)", None, a, b)
        a, b = self.paired(lambda: self.ctk(n64, "--version"),
                           lambda: self.generate(n64, "g64"), 2 * p)
        ratio_row("cdi generate, 64 nodes vs amd-ctk --version", 4.0, a, b)
        a, b = self.paired(lambda: self.generate(n64, "g64"),
                           lambda: self.generate(n256, "g256"), 2 * p)
        ratio_row("cdi generate, 256 nodes vs 64 nodes", 4.2, a, b)
        alone = self.hook_alone()
        rss = self.peak_rss()
        floor = f"/bin/true {rss['floor'] / MIB:.2f}"
        for key, figure in (("none", "peak RSS amd-container-hook, no request"),
                            ("all", "peak RSS amd-container-hook, 8 GPUs")):
            rows.append((figure, "<= 8 MiB", f"{alone[key][0] / MIB:.2f} MiB (max of 5; {floor})",
                         alone[key][0] <= 8 * MIB))
        for key, figure in (("ctk", "peak RSS amd-ctk cdi generate, 256 nodes"),
                            ("runtime", "peak RSS amd-container-runtime create")):
            rows.append((figure, "<= 8 MiB", f"{rss[key] / MIB:.2f} MiB (max of 3; {floor})",
                         rss[key] <= 8 * MIB))
        for key, figure in (("all", "  (hook process alone, 8 GPUs, v2)"),
                            ("all-v1", "  (hook process alone, 8 GPUs, v1)"),
                            ("one", "  (hook process alone, GPU 0 of 8, v2)"),
                            ("none", "  (hook process alone, no request)"),
                            ("true", "  (/bin/true as the hook process)")):
            rows.append((figure, "-", f"{alone[key][1] * 1e3:.2f} ms CPU (median of 5)", None))
        pairs = max(4, p // 6)
        a, b = [], []
        for i in range(pairs):
            if i % 2 == 0:
                x, y = self.batch(v2, "all-plain", 50), self.batch(v2, "all-hook", 50)
            else:
                y, x = self.batch(v2, "all-hook", 50), self.batch(v2, "all-plain", 50)
            a.append(x[0])
            b.append(y[0])
        ratio_row("50 concurrent GPU creates, cgroup v2: wall vs no hook", 1.10, a, b,
                  unit="ms wall")
        return rows

    def run(self):
        ok = True
        for s in range(1, self.sets + 1):
            rows = self.one_set()
            load = os.getloadavg()[0]
            print(f"\nset {s} of {self.sets} ({self.pairs} pairs per runc figure, "
                  f"load average {load:.1f})")
            w = max(len(r[0]) for r in rows)
            print(f"{'figure':<{w}} | {'goal':<9} | {'measured: median (min-max)':<52} | verdict")
            for figure, goal, measured, good in rows:
                verdict = "info" if good is None else "ok" if good else "MISSED"
                print(f"{figure:<{w}} | {goal:<9} | {measured:<52} | {verdict}")
                ok = ok and good is not False
            sys.stdout.flush()
        log = f"{self.work}/hook.log"
        if not os.path.exists(log) or "gave" not in open(log).read():
            die("the hook never injected anything (see the hook log)")
        return ok


def run(cmd):
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        die(f"{' '.join(cmd)}: {r.stderr.decode().strip()}")


def main():
    args = sys.argv[1:]
    sets, pairs = 2, 30
    while args:
        if args[0] == "--sets" and len(args) > 1:
            sets, args = int(args[1]), args[2:]
        elif args[0] == "--pairs" and len(args) > 1:
            pairs, args = int(args[1]), args[2:]
        else:
            print(__doc__.split("\n\n")[1], file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        print("bench: must run as root", file=sys.stderr)
        return 2
    for tool in ("runc", "nsenter", "busybox", "rustc", "umockdev-run"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} not found (tests/install-deps.sh)", file=sys.stderr)
            return 2
    work = os.path.realpath(os.environ.get("TMPDIR", "/tmp"))
    work = subprocess.run(["mktemp", "-d", f"{work}/amd-bench.XXXXXX"], capture_output=True,
                          text=True, check=True).stdout.strip()
    bench = Bench(work, sets, pairs)
    try:
        bench.prepare()
        return 0 if bench.run() else 1
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    finally:
        bench.close()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    sys.exit(main())
