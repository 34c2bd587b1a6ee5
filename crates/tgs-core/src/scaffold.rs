//! `thought new`: a thought's folder made from the templates (the
//! repository's own in `tgs/agentops/tgs/`, else the built-in ones, see
//! `template`), their placeholders filled in, and its README.

use crate::repo::Repo;
use crate::template::{fill, readme, Fill, BUILTIN};
use crate::thought::{slugify, ThoughtName, FALLBACK_SLUG, TEMPLATES_DIR, THOUGHTS_DIR};
use crate::Error;

/// What `thought new` made.
#[derive(Debug, Clone)]
pub struct Scaffolded {
    /// Repository-relative directory.
    pub dir: String,
    pub name: ThoughtName,
    pub files: Vec<String>,
    pub from_repo_templates: bool,
}

/// Create `tgs/thoughts/<short HEAD>-<slug>/` with the templates, their
/// placeholders of [`FILLED`](crate::template::FILLED) filled in, and a README.
///
/// The slug is the title transliterated to ASCII ([`slugify`]); a title that
/// leaves nothing (only punctuation, say) gives `<short HEAD>-thought`. The
/// title itself is kept as written, in the README's heading.
pub fn scaffold(repo: &Repo, title: &str, spec: Option<&str>) -> Result<Scaffolded, Error> {
    let title = crate::thought::one_line_title(title);
    if title.is_empty() {
        return Err(Error::invalid("the title is empty"));
    }
    let chars = title.chars().count();
    if chars > crate::thought::MAX_TITLE_CHARS {
        return Err(Error::Setup {
            message: format!(
                "the title has {chars} characters; a title has at most {}",
                crate::thought::MAX_TITLE_CHARS
            ),
            hint: Some(
                "give a short title, and the rest with --spec (README.md's Idea Spec)".into(),
            ),
        });
    }
    let slug = Some(slugify(&title))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| FALLBACK_SLUG.to_owned());
    if repo.head()?.is_none() {
        return Err(Error::invalid(
            "the repository has no commits yet; a thought's base hash is the commit it starts from",
        ));
    }
    let hash = repo.git().text(["rev-parse", "--short", "HEAD"])?;
    let name = ThoughtName::parse(&format!("{hash}-{slug}")).ok_or_else(|| {
        Error::invalid(format!(
            "cannot make a thought name from {hash:?} and {slug:?}"
        ))
    })?;
    let dir = format!("{THOUGHTS_DIR}/{name}");
    let abs = repo.root().join(&dir);
    if std::fs::symlink_metadata(&abs).is_ok() {
        return Err(Error::invalid(format!("{dir} already exists")));
    }

    let date = crate::clock::now().strftime("%Y-%m-%d").to_string();
    let with = Fill {
        title: &title,
        date: &date,
        hash: &hash,
    };
    let repo_own = repo_templates(repo)?;
    let from_repo_templates = !repo_own.is_empty();
    let templates = if from_repo_templates {
        repo_own
    } else {
        BUILTIN
            .iter()
            .map(|(n, b)| (n.to_string(), b.as_bytes().to_vec()))
            .collect()
    };

    std::fs::create_dir_all(abs.parent().expect("has parent"))?;
    std::fs::create_dir(&abs)?;
    let mut files = Vec::new();
    for (file, body) in &templates {
        if file == "README.md" {
            continue;
        }
        std::fs::write(abs.join(file), fill(body, &with))?;
        files.push(file.clone());
    }
    files.sort_by_key(|f| crate::thought::Role::of(f));
    std::fs::write(abs.join("README.md"), readme(&with, &files, spec))?;
    files.insert(0, "README.md".into());
    Ok(Scaffolded {
        dir,
        name,
        files,
        from_repo_templates,
    })
}

/// The repository's template files (regular files directly in the templates folder).
fn repo_templates(repo: &Repo) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let dir = repo.root().join(TEMPLATES_DIR);
    let Ok(read) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry?;
        // symlink_metadata: a symlinked template could copy any file on the machine into the repo.
        let meta = std::fs::symlink_metadata(entry.path())?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if meta.is_file() && !name.starts_with('.') {
            out.push((name, std::fs::read(entry.path())?));
        }
    }
    out.sort();
    Ok(out)
}
