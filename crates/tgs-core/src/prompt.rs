//! The implementation prompt: the repository's own template
//! (`steps.impl_prompt` in `tgs/tgs.yml`) or the built-in one, with
//! `{{placeholders}}` filled in.

use crate::thought::{Role, Thought};

/// The built-in implementation prompt.
pub const BUILTIN: &str = "\
You are implementing an approved TGSFlow thought in this repository.

Thought: {{title}} ({{thought_dir}})
Approved research: {{research}}
Approved plan: {{plan}}
{{previous_attempt}}
Read these files first:
{{context_files}}

Rules:
1. Implement the approved plan in the repository's code folders. Change nothing under tgs/ except the thought's implementation summary.
2. Write the implementation summary to {{impl_file}}, following its template: replace every placeholder.
3. Keep the change to what the plan asks; run the project's tests if it has any.
4. Commit your work on the current branch ({{branch}}) with a clear message. Do not push and do not open a pull request: tgs does both after checking your work.
";

/// What fills the placeholders.
#[derive(Debug, Clone)]
pub struct PromptVars<'a> {
    pub thought: &'a Thought,
    pub title: &'a str,
    pub context_files: &'a [String],
    pub branch: &'a str,
    pub attempt: u32,
    pub last_error: Option<&'a str>,
}

/// The thought's file for `role` in whichever layout it uses, for the prompt.
fn role_path(t: &Thought, role: Role, classic: &str, numbered: &str) -> String {
    let numbered_layout = t
        .files
        .iter()
        .any(|f| f.name.starts_with("00_") || f.name.starts_with("20_"));
    let existing = t
        .files
        .iter()
        .find(|f| !f.name.contains('/') && Role::of(&f.name) == Some(role))
        .map(|f| f.name.clone());
    let name =
        existing.unwrap_or_else(|| if numbered_layout { numbered } else { classic }.to_owned());
    format!("{}/{name}", t.dir)
}

/// The path of the thought's research.
pub fn research_file(t: &Thought) -> String {
    role_path(t, Role::Research, "research.md", "00_research.md")
}

/// The path of the thought's plan.
pub fn plan_file(t: &Thought) -> String {
    role_path(t, Role::Plan, "plan.md", "20_plan.md")
}

/// The path of the implementation summary the agent must write.
pub fn impl_file(t: &Thought) -> String {
    role_path(t, Role::Implementation, "implementation.md", "50_impl.md")
}

/// Fill a template. Unknown placeholders are left as they are.
pub fn render(template: &str, v: &PromptVars<'_>) -> String {
    let context = v
        .context_files
        .iter()
        .map(|f| format!("- {f}"))
        .collect::<Vec<_>>()
        .join("\n");
    let previous = match (v.attempt, v.last_error) {
        (n, Some(e)) if n > 1 => format!(
            "\nThis is attempt {n}. The previous attempt failed: {}\n",
            e.lines().next().unwrap_or(e)
        ),
        _ => String::new(),
    };
    let pairs = [
        ("{{title}}", v.title.to_owned()),
        ("{{thought_dir}}", v.thought.dir.clone()),
        (
            "{{research}}",
            role_path(v.thought, Role::Research, "research.md", "00_research.md"),
        ),
        (
            "{{plan}}",
            role_path(v.thought, Role::Plan, "plan.md", "20_plan.md"),
        ),
        ("{{impl_file}}", impl_file(v.thought)),
        ("{{context_files}}", context),
        ("{{branch}}", v.branch.to_owned()),
        ("{{attempt}}", v.attempt.to_string()),
        ("{{previous_attempt}}", previous),
    ];
    let mut out = template.to_owned();
    for (k, val) in pairs {
        out = out.replace(k, &val);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thought::{ThoughtFile, ThoughtName};

    fn thought(files: &[&str]) -> Thought {
        Thought {
            dir: "tgs/thoughts/abc1234-x".into(),
            name: ThoughtName::parse("abc1234-x").unwrap(),
            legacy: false,
            files: files
                .iter()
                .map(|f| ThoughtFile {
                    name: f.to_string(),
                    oid: "0".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn builtin_prompt_names_the_files_and_rules() {
        let t = thought(&["README.md", "research.md", "plan.md"]);
        let ctx = vec![
            "tgs/thoughts/abc1234-x/plan.md".to_string(),
            "CLAUDE.md".into(),
        ];
        let p = render(
            BUILTIN,
            &PromptVars {
                thought: &t,
                title: "X",
                context_files: &ctx,
                branch: "tgs/abc1234-x",
                attempt: 2,
                last_error: Some("timeout: 5h"),
            },
        );
        assert!(p.contains("Approved plan: tgs/thoughts/abc1234-x/plan.md"));
        assert!(p.contains("implementation summary to tgs/thoughts/abc1234-x/implementation.md"));
        assert!(p.contains("- CLAUDE.md"));
        assert!(p.contains("attempt 2. The previous attempt failed: timeout: 5h"));
        assert!(!p.contains("{{"));
    }

    #[test]
    fn numbered_layout() {
        let t = thought(&["00_research.md", "20_plan.md"]);
        assert_eq!(impl_file(&t), "tgs/thoughts/abc1234-x/50_impl.md");
        let p = render(
            "{{research}} {{plan}} {{unknown}}",
            &PromptVars {
                thought: &t,
                title: "X",
                context_files: &[],
                branch: "b",
                attempt: 1,
                last_error: None,
            },
        );
        assert_eq!(
            p,
            "tgs/thoughts/abc1234-x/00_research.md tgs/thoughts/abc1234-x/20_plan.md {{unknown}}"
        );
    }
}
