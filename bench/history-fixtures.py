#!/usr/bin/env python3
"""Fixtures for the large-history benchmarks: a repository with a bare origin
whose state branch (tgs-state) holds ENTRIES backlog entries, of which LIVE are
queued in the live backlog and the rest finished and archived by day, and
AUDIT audit lines (with one metrics row per ten) spread over the days of 24
months (28 a month), as tgs writes them (`<kind>/<YYYY-MM>/<DD>.<ext>`). The approved thoughts of the live entries are on main.

usage: history-fixtures.py DIR ENTRIES AUDIT LIVE
Prints the state commit; DIR/clone is a clone ready to claim from, and
DIR/state.orig names the state commit to reset to between runs.
"""
import json, os, subprocess, sys

def main():
    root, entries, audit, live = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    os.makedirs(root, exist_ok=True)
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com",
               GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="gc.auto", GIT_CONFIG_VALUE_0="0")
    def git(cwd, *a, **kw):
        return subprocess.run(["git", "-C", cwd, *a], check=True, capture_output=True, env=env, **kw).stdout
    origin, repo = os.path.join(root, "origin.git"), os.path.join(root, "repo")
    git(root, "init", "-q", "--bare", "-b", "main", origin)
    git(root, "init", "-q", "-b", "main", repo)
    os.makedirs(os.path.join(repo, "src"))
    open(os.path.join(repo, "src", "lib.rs"), "w").write("pub fn x() {}\n")
    dirs = []
    for i in range(entries):
        d = "tgs/thoughts/%07x-thought-%d" % (0xd000000 + i, i)
        dirs.append(d)
        if i < live:
            p = os.path.join(repo, d)
            os.makedirs(p)
            open(os.path.join(p, "README.md"), "w").write("# %07x - Thought %d\n" % (0xd000000 + i, i))
            open(os.path.join(p, "research.md"), "w").write("# Research\nfacts\n")
            open(os.path.join(p, "plan.md"), "w").write("# Plan\nsteps\n")
    git(repo, "add", "-A"); git(repo, "commit", "-q", "-m", "thoughts")
    git(repo, "remote", "add", "origin", origin); git(repo, "push", "-q", "-u", "origin", "main")
    months = ["%04d-%02d" % (2025 + (m // 12), m % 12 + 1) for m in range(24)]
    now_month = "2026-12"
    def entry(i, status):
        e = {"dir": dirs[i], "title": "Thought %d" % i, "priority": 0, "status": status,
             "added_at": "2025-01-01T00:00:00Z", "started_at": None, "completed_at": None}
        if status == "completed":
            e.update({"started_at": "2025-01-02T00:00:00Z", "completed_at": "2025-01-02T01:00:00Z",
                      "claimed_by": "w/bench", "attempts": 1, "branch": "tgs/" + dirs[i].rsplit("/", 1)[1],
                      "pr_url": "https://github.com/o/r/pull/%d" % i, "pr_state": "merged"})
        return e
    files = {}
    backlog = {"version": "1", "thoughts": [entry(i, "queued") for i in range(live)]}
    files["tgs/server/backlog.json"] = json.dumps(backlog, indent=2) + "\n"
    days = ["%s/%02d" % (m, d) for m in months for d in range(1, 29)]
    archived = [entry(i, "completed") for i in range(live, entries)]
    for k, day in enumerate(days):
        part = archived[k::len(days)]
        if part:
            files["tgs/server/archive/%s.jsonl" % day] = "".join(json.dumps(e) + "\n" for e in part)
    header = "thought,worker,agent,started,ended,duration_s,outcome,attempt,exit_code,turns,cost_usd,input_tokens,output_tokens,pr_url\n"
    n = audit // len(days)
    extra = audit - n * len(days)
    done = 0
    for k, day in enumerate(days):
        count = n + (1 if k < extra else 0)
        stamp = day.replace("/", "-")
        lines, rows = [], [header]
        for j in range(count):
            d = dirs[(done + j) % entries]
            lines.append(json.dumps({"time": "%sT12:00:00Z" % stamp, "worker": "w/bench", "action": ["claim", "complete", "add"][j % 3],
                                     "thought": d, "from": "queued", "to": "in_progress", "attempt": 1,
                                     "commit": "%040x" % (done + j)}) + "\n")
            if (done + j) % 10 == 0:
                rows.append("%s,w/bench,claude-code,%sT12:00:00Z,%sT12:30:00Z,1800.0,success,1,0,12,0.4200,1000,500,\n" % (d, stamp, stamp))
        done += count
        files["tgs/server/audit/%s.jsonl" % day] = "".join(lines)
        if len(rows) > 1:
            files["tgs/server/metrics/%s.csv" % day] = "".join(rows)
    # One commit on tgs-state, written with fast-import.
    stream = ["commit refs/heads/tgs-state", "committer bench <bench@example.com> 1700000000 +0000", "data 12", "bench state"]
    body = "\n".join(stream) + "\n"
    chunks = [body.encode()]
    for path, text in sorted(files.items()):
        data = text.encode()
        chunks.append(("M 100644 inline %s\ndata %d\n" % (path, len(data))).encode() + data + b"\n")
    subprocess.run(["git", "-C", origin, "fast-import", "--quiet"], input=b"".join(chunks), check=True, env=env)
    tip = git(origin, "rev-parse", "refs/heads/tgs-state").decode().strip()
    git(root, "clone", "-q", origin, os.path.join(root, "clone"))
    open(os.path.join(root, "state.orig"), "w").write(tip + "\n")
    print(tip)

if __name__ == "__main__":
    main()
