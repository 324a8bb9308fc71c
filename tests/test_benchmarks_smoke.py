"""Smoke tests: the benchmark scripts run on a tiny corpus and report sane numbers.

No timing assertions: these only keep the scripts from rotting.
"""

import gzip
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load_corpus_module():
    spec = importlib.util.spec_from_file_location("bench_corpus", BENCHMARKS / "corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(script, *args, env=None):
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
    )


def _gzipped_corpus(tmp_path, count):
    """A gzipped corpus of ``count`` messages written by corpus.py, and its path."""
    corpus = tmp_path / "c.jsonl.gz"
    assert _run("corpus.py", "--count", count, "--gzip", "-o", corpus).returncode == 0
    return corpus


@pytest.fixture(scope="module")
def corpus_module():
    """benchmarks/corpus.py, imported by path (benchmarks/ is not a package)."""
    return _load_corpus_module()


class TestCorpus:
    """The corpus generator is deterministic and mixes every call type."""

    def test_same_seed_same_messages(self, corpus_module):
        """The same count and seed give the same messages; another seed does not."""
        first = list(corpus_module.generate(50, 7))
        assert first == list(corpus_module.generate(50, 7))
        assert first != list(corpus_module.generate(50, 8))

    def test_mix_covers_every_call_type(self, corpus_module):
        """A few hundred messages hold every call type, orders and anonymous messages."""
        messages = list(corpus_module.generate(400, 1))
        assert {m["type"] for m in messages} == {
            "identify",
            "track",
            "page",
            "screen",
            "group",
            "alias",
        }
        orders = [m for m in messages if m.get("event") == "Order Completed"]
        assert orders
        assert all(1 <= len(m["properties"]["products"]) <= 5 for m in orders)
        assert any("userId" not in m and "anonymousId" in m for m in messages)
        assert all("messageId" in m and "timestamp" in m and "context" in m for m in messages)

    def test_cli_writes_plain_and_gzipped_jsonl(self, tmp_path, corpus_module):
        """The CLI writes the same JSON lines plain and gzipped, readable back."""
        plain, packed = tmp_path / "c.jsonl", tmp_path / "c.jsonl.gz"
        assert _run("corpus.py", "--count", 30, "--seed", 3, "-o", plain).returncode == 0
        result = _run("corpus.py", "--count", 30, "--seed", 3, "--gzip", "-o", packed)
        assert result.returncode == 0
        assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()
        lines = corpus_module.read_lines(packed)
        assert len(lines) == 30
        assert [json.loads(line) for line in lines] == list(corpus_module.generate(30, 3))

    def test_cached_corpus_is_written_once(self, tmp_path, corpus_module):
        """cached() writes the corpus file once and returns the same file after."""
        path = corpus_module.cached(20, 5, tmp_path)
        written = path.stat().st_mtime_ns
        assert corpus_module.cached(20, 5, tmp_path) == path
        assert path.stat().st_mtime_ns == written
        assert len(corpus_module.read_lines(path)) == 20


class TestBenchTranslate:
    """bench_translate.py completes on a tiny corpus and reports its numbers."""

    def test_reports_rates_and_ratios(self, tmp_path):
        """Every measurement has a positive rate and both ratios are present."""
        out = tmp_path / "translate.json"
        result = _run(
            "bench_translate.py",
            *("--count", 200, "--repeat", 1, "--json", out, "--cache-dir", tmp_path),
        )
        assert result.returncode == 0, result.stderr
        assert "translate / floor" in result.stdout
        report = json.loads(out.read_text())
        assert report["stats"]["messages"] == 200
        assert report["stats"]["invalid"] == 0
        assert report["stats"]["requests"] >= 200
        assert {"translate", "end_to_end", "floor"} <= set(report["results"])
        for numbers in report["results"].values():
            assert numbers["events_per_s"] > 0
            assert numbers["us_per_event"] > 0
        assert set(report["ratios"]) == {"translate_vs_floor", "end_to_end_vs_floor"}
        assert all(ratio > 0 for ratio in report["ratios"].values())
        assert len(list(tmp_path.glob("corpus-200-1-*.jsonl"))) == 1

    def test_reads_a_gzipped_corpus_file(self, tmp_path):
        """--corpus takes a gzipped file written by the generator."""
        packed = tmp_path / "c.jsonl.gz"
        assert _run("corpus.py", "--count", 100, "--gzip", "-o", packed).returncode == 0
        result = _run("bench_translate.py", "--corpus", packed, "--repeat", 1, "--json-lib", "json")
        assert result.returncode == 0, result.stderr
        assert "100 messages" in result.stdout


class TestBenchPeer:
    """bench_peer.py is not run here (it needs npm install), only its entry points."""

    def test_help(self):
        """--help describes the options."""
        result = _run("bench_peer.py", "--help")
        assert result.returncode == 0, result.stderr
        assert "--rounds" in result.stdout

    def test_skips_without_node(self, tmp_path):
        """Without node and npm on PATH it says it skipped and exits 0."""
        env = {**os.environ, "PATH": str(tmp_path)}
        result = _run("bench_peer.py", "--count", 10, env=env)
        assert result.returncode == 0, result.stderr
        assert "skipped" in result.stdout


def _load_benchmark_module(name):
    """A benchmark script imported by path, with benchmarks/ importable for its imports."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


class TestStandInServer:
    """standin_server.py runs BrazeStandIn in its own process for the benchmarks."""

    def test_sliding_window_count(self):
        """max_in_window counts the most arrivals in any window, not per fixed window."""
        server = _load_benchmark_module("standin_server")
        assert server.max_in_window([], 3.0) == 0
        assert server.max_in_window([0.0, 1.0, 2.9, 3.0, 5.5], 3.0) == 3
        assert server.max_in_window([2.0, 2.5, 0.0, 4.9], 3.0) == 3

    def test_protocol(self):
        """The child prints its URL, answers stats and reset, and stops at end of input."""
        server = _load_benchmark_module("standin_server")
        with server.StandInProcess(key="smoke-key", rate_limit=(5, 1.0)) as stand_in:
            event = {"external_id": "u", "name": "E", "time": "2024-05-01T00:00:00Z"}
            answer = requests.post(
                f"{stand_in.url}/users/track",
                json={"events": [event]},
                headers={"Authorization": "Bearer smoke-key"},
                timeout=10,
            )
            assert answer.status_code == 201
            stats = stand_in.stats()
            assert stats["requests"] == 1
            assert stats["statuses"] == {"201": 1}
            assert stats["accepted"]["events"] == 1
            assert len(stats["received_at"]["/users/track"]) == 1
            stand_in.reset()
            assert stand_in.stats()["requests"] == 0


class TestBenchSend:
    """bench_send.py completes on a tiny corpus and reports rates and the rate limit."""

    def test_reports_rates_ratios_and_request_rate(self, tmp_path):
        """Translate-only and both latencies are measured; every request was accepted."""
        out = tmp_path / "send.json"
        result = _run(
            "bench_send.py",
            *("--count", 150, "--repeat", 1, "--json", out, "--cache-dir", tmp_path),
        )
        assert result.returncode == 0, result.stderr
        assert "of the translate-only rate" in result.stdout
        report = json.loads(out.read_text())
        assert set(report["results"]) == {"translate", "send_0ms", "send_20ms"}
        for numbers in report["results"].values():
            assert numbers["events_per_s"] > 0
        for name in ("send_0ms", "send_20ms"):
            row = report["results"][name]
            assert row["delivered"] == 150
            assert set(row["statuses"]) == {"201"}
            assert 0 < row["max_track_in_window"] <= 3000
        assert set(report["ratios"]) == {
            "send_0ms_vs_translate",
            "send_20ms_vs_translate",
            "send_20ms_vs_send_0ms",
        }


class TestBenchReplay:
    """bench_replay.py completes on two tiny gzipped corpora and reports memory and rates."""

    def test_reports_memory_and_rates(self, tmp_path):
        """Every measurement at every size has a rate and a peak RSS; growth is compared."""
        out = tmp_path / "replay.json"
        result = _run(
            "bench_replay.py",
            *("--sizes", "200,400", "--repeat", 1, "--with-send", "--json", out),
            *("--cache-dir", tmp_path),
        )
        assert result.returncode == 0, result.stderr
        assert "peak RSS MB" in result.stdout
        report = json.loads(out.read_text())
        names = {"read", "dry:1", "dry:2", "send", "real:1", "real:2"}
        assert set(report["results"]) == {"200", "400"}
        for measurements in report["results"].values():
            assert set(measurements) == names
            for numbers in measurements.values():
                assert numbers["returncode"] == 0
                assert numbers["events_per_s"] > 0
                assert numbers["max_rss_kb"] > 0
        assert set(report["memory"]) == names
        assert report["results"]["400"]["real:2"]["accepted"]["events"] > 0
        assert len(list(tmp_path.glob("corpus-400-1-*.jsonl.gz"))) == 1


class TestBenchTransport:
    """bench_transport.py posts through both transports and reports CPU per request."""

    def test_reports_both_transports(self):
        """A line per transport, each with a CPU figure."""
        result = _run("bench_transport.py", *("--requests", 20, "--repeat", 1, "--size", 500))
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert [line.split(":")[0] for line in lines] == ["requests", "lean"]
        assert all("us CPU per request" in line for line in lines)


class TestBenchCeiling:
    """bench_ceiling.py sends a tiny gzipped corpus into the sink and reports ratios."""

    def test_reports_ratios_and_memory(self, tmp_path):
        """Translate and two configs are measured; every message is delivered, no 429s."""
        corpus, out = tmp_path / "c.jsonl.gz", tmp_path / "ceiling.json"
        assert _run("corpus.py", "--count", 300, "--gzip", "-o", corpus).returncode == 0
        result = _run(
            "bench_ceiling.py",
            *("--corpus", corpus, "--repeat", 1, "--json", out),
            *("--config", "one:workers=4", "--config", "two:processes=2,input=lines"),
        )
        assert result.returncode == 0, result.stderr
        assert "x ceiling" in result.stdout
        report = json.loads(out.read_text())
        assert set(report) == {"translate", "one", "two"}
        assert report["translate"][0]["messages"] == 300
        for name in ("one", "two"):
            [numbers] = report[name]
            assert numbers["delivered"] + numbers["dropped"] + numbers["failed"] == 300
            assert numbers["failed"] == 0
            assert numbers["status_429"] == 0
            assert numbers["rss_kb"] > 0


class TestBenchThreads:
    """bench_threads.py splits one send's CPU by thread and children."""

    def test_reports_each_thread_group(self, tmp_path):
        """A send of a tiny corpus lists the parent's thread groups, the children and the GC."""
        corpus = _gzipped_corpus(tmp_path, 300)
        result = _run("bench_threads.py", "--corpus", corpus, "--repeat", 1)
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert out.startswith("300 messages in ")
        for group in ("sender workers", "couriers (HTTP)", "caller's thread", "children (2)"):
            assert group in out
        assert "garbage collector" in out


class TestBenchCommands:
    """bench_commands.py runs the commands a user types, side by side."""

    def test_reports_each_command_against_send(self, tmp_path):
        """One round on a tiny corpus gives a rate per command and send's ratio of 1."""
        corpus = _gzipped_corpus(tmp_path, 200)
        result = _run("bench_commands.py", "--corpus", corpus, "--rounds", 1)
        assert result.returncode == 0, result.stderr
        table = result.stdout.split("config | messages/s median [range] | x send\n", 1)[1]
        rows = [line.split(" | ") for line in table.strip().splitlines()]
        assert [row[0] for row in rows] == [
            "send",
            "replay, no cache",
            "replay, memory cache",
            "replay (default)",
        ]
        assert rows[0][2] == "1.00"
        assert all(float(row[2]) > 0 for row in rows)
