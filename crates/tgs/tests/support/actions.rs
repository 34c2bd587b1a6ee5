//! A small stand-in for a GitHub Actions runner, enough to run the jobs of
//! the workflows `tgs server init` writes, step by step, on this machine:
//! each `run:` step in `bash --noprofile --norc -eo pipefail` with the
//! runner's files (`GITHUB_OUTPUT`, `GITHUB_PATH`, `RUNNER_TEMP`...) and
//! its `env:` evaluated; the actions the workflows use replaced by what
//! they do here (a checkout is a clone of the bare `origin`, artifacts are
//! folders, the cache always hits: the tgs under test is on `PATH`).
//!
//! Expressions and conditions: the forms the workflows use, no more. One
//! it does not know fails the test, so a workflow that changes shape is
//! never run half-understood.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_serde::Value as Yaml;

/// One run of a workflow: what its jobs share.
pub struct Run {
    pub workflow: Yaml,
    /// The bare repository jobs check out.
    pub origin: PathBuf,
    /// Where artifacts are kept, one folder each.
    pub artifacts: PathBuf,
    /// The environment every step starts from (HOME set per job).
    pub base_env: Vec<(String, String)>,
    /// `inputs.*`, `secrets.*`, `vars.*` (absent: empty).
    pub inputs: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    pub root: PathBuf,
    pub run_id: String,
    /// Each finished job's outputs, by job id.
    pub needs: BTreeMap<String, BTreeMap<String, String>>,
}

/// What one job (one matrix entry) did.
#[derive(Debug, Default)]
pub struct JobResult {
    pub outputs: BTreeMap<String, String>,
    /// Each step's name and what it printed (stdout and stderr).
    pub steps: Vec<(String, String)>,
    /// The step that failed, if one did (the job stops there).
    pub failed: Option<String>,
}

struct Ctx<'a> {
    run: &'a Run,
    matrix: BTreeMap<String, String>,
    steps: BTreeMap<String, BTreeMap<String, String>>,
    temp: PathBuf,
}

impl Run {
    /// The matrix entries of `job` (`fromJSON(needs.X.outputs.Y)`'s
    /// `include`), or one empty entry for a job without a matrix.
    pub fn matrix(&self, job: &str) -> Vec<BTreeMap<String, String>> {
        let spec = &self.workflow["jobs"][job]["strategy"]["matrix"];
        let Some(text) = spec.as_str() else {
            return vec![BTreeMap::new()];
        };
        let inner = expr_of(text)
            .and_then(|e| e.strip_prefix("fromJSON(")?.strip_suffix(')'))
            .unwrap_or_else(|| panic!("matrix {text:?}: not fromJSON(...)"));
        let ctx = self.ctx(BTreeMap::new(), Path::new("/"));
        let json: serde_json::Value = serde_json::from_str(&eval(inner, &ctx)).unwrap();
        json["include"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e.as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
                    .collect()
            })
            .collect()
    }

    /// Whether `job`'s `if:` holds now.
    pub fn job_runs(&self, job: &str) -> bool {
        let ctx = self.ctx(BTreeMap::new(), Path::new("/"));
        self.workflow["jobs"][job]["if"]
            .as_str()
            .is_none_or(|c| condition(c, &ctx))
    }

    fn ctx(&self, matrix: BTreeMap<String, String>, temp: &Path) -> Ctx<'_> {
        Ctx {
            run: self,
            matrix,
            steps: BTreeMap::new(),
            temp: temp.to_owned(),
        }
    }

    /// Run `job` for one `matrix` entry (`name` tells its folders apart);
    /// its outputs are kept for the jobs that need it.
    pub fn job(&mut self, job: &str, name: &str, matrix: BTreeMap<String, String>) -> JobResult {
        let dir = self.root.join(name);
        let (work, home, temp) = (dir.join("work"), dir.join("home"), dir.join("temp"));
        for d in [&home, &temp] {
            std::fs::create_dir_all(d).unwrap();
        }
        let mut ctx = self.ctx(matrix, &temp);
        let mut result = JobResult::default();
        let mut path_extra: Vec<String> = Vec::new();
        let spec = self.workflow["jobs"][job].clone();
        for (i, step) in spec["steps"].as_sequence().unwrap().iter().enumerate() {
            let label = step["name"].as_str().unwrap_or("step").to_owned();
            if let Some(c) = step["if"].as_str() {
                if !condition(c, &ctx) {
                    continue;
                }
            }
            let out_file = temp.join(format!("output-{i}"));
            let said = if let Some(uses) = step["uses"].as_str() {
                let outputs = self.action(uses, &step["with"], &ctx, &work);
                if let Some(id) = step["id"].as_str() {
                    ctx.steps.insert(id.to_owned(), outputs);
                }
                String::new()
            } else {
                let script = step["run"].as_str().unwrap();
                let mut cmd = Command::new("bash");
                cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
                    .current_dir(&work)
                    .env_clear()
                    .envs(self.base_env.iter().map(|(k, v)| (k, v)))
                    .env("HOME", &home)
                    .env("RUNNER_TEMP", &temp)
                    .env("GITHUB_OUTPUT", &out_file)
                    .env("GITHUB_PATH", temp.join("path"))
                    .env("GITHUB_ENV", temp.join("env"))
                    .env("GITHUB_WORKSPACE", &work)
                    .env("GITHUB_RUN_ID", &self.run_id)
                    .env("GITHUB_RUN_ATTEMPT", "1")
                    .env("GITHUB_ACTIONS", "true")
                    .env("CI", "true");
                let base_path = self
                    .base_env
                    .iter()
                    .find(|(k, _)| k == "PATH")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let mut path = path_extra.clone();
                path.push(base_path);
                cmd.env("PATH", path.join(":"));
                if let Some(env) = step["env"].as_mapping() {
                    for (k, v) in env {
                        let v = v.as_str().map_or_else(|| yaml_text(v), str::to_owned);
                        cmd.env(k.as_str().unwrap(), substitute(&v, &ctx));
                    }
                }
                let out = cmd.output().unwrap();
                let said = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                if let Some(id) = step["id"].as_str() {
                    ctx.steps.insert(id.to_owned(), read_outputs(&out_file));
                }
                if let Ok(added) = std::fs::read_to_string(temp.join("path")) {
                    path_extra = added.lines().rev().map(str::to_owned).collect();
                }
                if !out.status.success() {
                    result.steps.push((label.clone(), said));
                    result.failed = Some(label);
                    return result;
                }
                said
            };
            result.steps.push((label, said));
        }
        if let Some(outs) = spec["outputs"].as_mapping() {
            for (k, v) in outs {
                let v = substitute(v.as_str().unwrap(), &ctx);
                result.outputs.insert(k.as_str().unwrap().to_owned(), v);
            }
        }
        self.needs.insert(job.to_owned(), result.outputs.clone());
        result
    }

    /// What an action does here; its outputs.
    fn action(&self, uses: &str, with: &Yaml, ctx: &Ctx, work: &Path) -> BTreeMap<String, String> {
        let name = uses.split('@').next().unwrap();
        let arg = |k: &str| with[k].as_str().map(|v| substitute(v, ctx));
        // A relative path is the workspace's.
        let at = |p: String| work.join(p);
        let mut outputs = BTreeMap::new();
        match name {
            "actions/checkout" => {
                let ok = Command::new("git")
                    .envs(self.base_env.iter().map(|(k, v)| (k, v)))
                    .args(["clone", "-q"])
                    .arg(&self.origin)
                    .arg(work)
                    .status()
                    .unwrap();
                assert!(ok.success(), "checkout");
            }
            "actions/cache" | "actions/cache/restore" => {
                // The tgs under test is on PATH: the cache holds it.
                outputs.insert("cache-hit".into(), "true".into());
            }
            "actions/setup-node" => {}
            "actions/upload-artifact" => {
                let from = at(arg("path").unwrap());
                let to = self.artifacts.join(arg("name").unwrap());
                if from.is_dir() && std::fs::read_dir(&from).unwrap().next().is_some() {
                    copy_dir(&from, &to);
                }
            }
            "actions/download-artifact" => {
                let to = at(arg("path").unwrap());
                let pattern = arg("pattern").unwrap();
                let merge = with["merge-multiple"].as_bool().unwrap_or(false);
                std::fs::create_dir_all(&to).unwrap();
                for a in std::fs::read_dir(&self.artifacts)
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let n = a.file_name().to_string_lossy().into_owned();
                    if glob_match(&pattern, &n) {
                        copy_dir(&a.path(), &if merge { to.clone() } else { to.join(&n) });
                    }
                }
            }
            other => panic!("an action this runner does not know: {other}"),
        }
        outputs
    }
}

fn read_outputs(file: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((k, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(k.to_owned(), value.join("\n"));
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(k.to_owned(), v.to_owned());
        }
    }
    out
}

fn yaml_text(v: &Yaml) -> String {
    match v {
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// The expression inside `${{ ... }}` when `text` is exactly one.
fn expr_of(text: &str) -> Option<&str> {
    let t = text.trim();
    Some(t.strip_prefix("${{")?.strip_suffix("}}")?.trim())
}

/// `text` with each `${{ expr }}` replaced by its value.
fn substitute(text: &str, ctx: &Ctx) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${{") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("}}").expect("an unclosed expression") + i;
        out.push_str(&eval(rest[i + 3..end].trim(), ctx));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The value of an expression: `a || b` (the first non-empty), a context's
/// field, or a quoted literal.
fn eval(expr: &str, ctx: &Ctx) -> String {
    if let Some((a, b)) = expr.split_once("||") {
        let a = eval(a.trim(), ctx);
        return if a.is_empty() { eval(b.trim(), ctx) } else { a };
    }
    if let Some(lit) = expr.strip_prefix('\'').and_then(|e| e.strip_suffix('\'')) {
        return lit.to_owned();
    }
    let parts: Vec<&str> = expr.split('.').collect();
    let get = |m: &BTreeMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
    match parts.as_slice() {
        ["matrix", k] => get(&ctx.matrix, k),
        ["inputs", k] => get(&ctx.run.inputs, k),
        ["secrets", k] => get(&ctx.run.secrets, k),
        ["vars", _] => String::new(),
        ["github", "run_id"] => ctx.run.run_id.clone(),
        ["github", "run_attempt"] => "1".into(),
        ["github", "token"] => get(&ctx.run.secrets, "GITHUB_TOKEN"),
        ["runner", "temp"] => ctx.temp.display().to_string(),
        ["runner", "os"] => "Linux".into(),
        ["runner", "arch"] => "X64".into(),
        ["steps", id, "outputs", k] => ctx.steps.get(*id).map(|m| get(m, k)).unwrap_or_default(),
        ["needs", job, "outputs", k] => ctx
            .run
            .needs
            .get(*job)
            .map(|m| get(m, k))
            .unwrap_or_default(),
        ["needs", job, "result"] if ctx.run.needs.contains_key(*job) => "success".into(),
        _ => panic!("an expression this runner does not know: {expr}"),
    }
}

/// A condition: terms joined by `&&`, each `always()`, `X == 'v'`,
/// `X != 'v'` or `X > N`.
fn condition(text: &str, ctx: &Ctx) -> bool {
    let text = expr_of(text).unwrap_or(text);
    text.split("&&").all(|term| {
        let term = term.trim();
        if term == "always()" {
            return true;
        }
        if let Some((a, b)) = term.split_once("!=") {
            return eval(a.trim(), ctx) != eval(b.trim(), ctx);
        }
        if let Some((a, b)) = term.split_once("==") {
            return eval(a.trim(), ctx) == eval(b.trim(), ctx);
        }
        if let Some((a, b)) = term.split_once('>') {
            let n: i64 = eval(a.trim(), ctx).parse().unwrap_or(0);
            return n > b.trim().parse::<i64>().unwrap();
        }
        panic!("a condition this runner does not know: {term}")
    })
}

/// `*` anywhere in `pattern`, as artifact patterns use it.
fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, post)) => {
            name.len() >= pre.len() + post.len() && name.starts_with(pre) && name.ends_with(post)
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
