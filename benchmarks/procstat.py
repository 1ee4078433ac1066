"""Broker CPU and memory from /proc, and a description of the machine."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process (utime + stime, fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat_file:
        stat = stat_file.read()
    # The command name may contain spaces; the fields after it start at the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time of one process's main thread ("main") and of its other threads by thread id: how
    much of the broker's work its event loop does, and how much its database threads do."""
    seconds: dict[str, float] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return seconds
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue  # the thread ended meanwhile
        # Python does not name the operating system's threads: they all carry the process's name.
        name = "main" if int(task) == pid else f"thread {task}"
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds[name] = seconds.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return seconds


def rss_bytes(pid: int) -> int:
    """Resident set size from /proc/<pid>/status (VmRSS)."""
    with open(f"/proc/{pid}/status") as status_file:
        for line in status_file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def own_cpu_seconds() -> float:
    """CPU time of the generator process itself, to tell when the generator is the bottleneck."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> tuple[float, float]:
    """(process time, interrupt time) summed over all cores, from the first line of /proc/stat.

    Process time is user + nice + system + steal; interrupt time (irq + softirq) is kept apart because
    the kernel does much of the loopback network work there, on behalf of the broker and the generator.
    """
    with open("/proc/stat") as stat_file:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(value) for value in stat_file.readline().split()[1:9]
        )
    return (user + nice + system + steal) / CLOCK_TICKS, (irq + softirq) / CLOCK_TICKS


@dataclass(slots=True)
class CpuWindow:
    """CPU seconds of the broker, of the generator and of everything else across one interval.

    The last one shows when other work on a shared machine competed with the measurement.
    """

    broker_pid: int
    broker_start: float = 0.0
    generator_start: float = 0.0
    machine_start: tuple[float, float] = (0.0, 0.0)
    broker_seconds: float = 0.0
    generator_seconds: float = 0.0
    other_seconds: float = 0.0
    interrupt_seconds: float = 0.0
    profiler: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    threads_start: dict[str, float] = field(default_factory=dict)
    # CPU seconds per broker thread over the window; threads that ended during it are missing.
    thread_seconds: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        if PROFILING.output is not None:
            self.profiler = PROFILING.record(self.broker_pid)
        self.broker_start = cpu_seconds(self.broker_pid)
        self.threads_start = thread_cpu_seconds(self.broker_pid)
        self.generator_start = own_cpu_seconds()
        self.machine_start = machine_busy_seconds()

    def stop(self) -> None:
        self.broker_seconds = cpu_seconds(self.broker_pid) - self.broker_start
        self.thread_seconds = {
            name: round(seconds - self.threads_start.get(name, 0.0), 3)
            for name, seconds in thread_cpu_seconds(self.broker_pid).items()
            if seconds - self.threads_start.get(name, 0.0) > 0
        }
        self.generator_seconds = own_cpu_seconds() - self.generator_start
        processes, interrupts = machine_busy_seconds()
        busy = processes - self.machine_start[0]
        self.interrupt_seconds = interrupts - self.machine_start[1]
        self.other_seconds = max(0.0, busy - self.broker_seconds - self.generator_seconds)
        if self.profiler is not None:
            PROFILING.finish(self.profiler)
            self.profiler = None


@dataclass(slots=True)
class Profiling:
    """py-spy samples of the broker over each measured window (`--profile`), one raw file per window.

    Sampling is non-blocking (the broker is never paused) unless native frames are asked for; py-spy's
    own CPU time counts as "other".
    The CPU figures of a profiled run are not comparable with an unprofiled one.
    """

    output: Path | None = None
    label: str = "window"
    rate: int = 250
    native: bool = False  # C frames too (uvloop, the sqlite3 module): slower sampling
    windows: int = 0

    def record(self, pid: int) -> subprocess.Popen[bytes]:
        binary = shutil.which("py-spy")
        if binary is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        assert self.output is not None
        self.output.mkdir(parents=True, exist_ok=True)
        self.windows += 1
        path = self.output / f"{self.label}-{self.windows}.raw"
        return subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                # py-spy reads native stacks only from a paused process.
                *(["--native"] if self.native else ["--nonblocking"]),
                "--threads",
                "--rate",
                str(self.rate),
                "--format",
                "raw",
                "--output",
                str(path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def finish(self, profiler: subprocess.Popen[bytes]) -> None:
        # py-spy writes its file when interrupted.
        profiler.send_signal(signal.SIGINT)
        try:
            profiler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            profiler.kill()


PROFILING = Profiling()


def machine_info() -> dict[str, object]:
    """CPU model, cores, kernel, Python and Mosquitto versions for every result record."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mosquitto": mosquitto_version(),
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
    }


def mosquitto_version(binary: str = "/usr/sbin/mosquitto") -> str | None:
    """The first line of `mosquitto -h`, e.g. "2.0.11", or None when it is not installed."""
    if not os.path.exists(binary):
        return None
    completed = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False, timeout=10)
    for line in (completed.stdout + completed.stderr).splitlines():
        if "version" in line:
            return line.rsplit("version", 1)[1].strip()
    return None
