//! Every regular expression built into tgs, compiled in the binary as it
//! was built. A pattern needs features of the `regex` crate (`(?i)` needs
//! Unicode case folding); a dev-dependency can switch such a feature on for
//! the tests while the installed binary lacks it, and the pattern then
//! panics only in the field. `tgs debug self-check` runs this in the
//! installed binary, and the integration tests run it in the binary they
//! test (the release build, under CI).

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Compile every built-in pattern. Returns how many checks passed, or the
/// names of those that failed, with what they said.
pub fn patterns() -> Result<usize, Vec<String>> {
    let checks: &[(&str, &dyn Fn() -> bool)] = &[
        ("provider retry-after", &|| {
            crate::runner::outcome::retry_after_in("Retry-After: 3").is_some()
        }),
        ("transcript file names", &|| {
            crate::report::parse_transcript_name("x-20260101T000000Z.log").is_some()
        }),
        ("terminal escapes", &|| {
            crate::report::site::strip_ansi("\x1b[1mA\x1b[0m") == "A"
        }),
        ("secret rules", &|| {
            let s = crate::secrets::Scanner::new(&[]);
            !format!("{s:?}").is_empty()
        }),
        ("template skeletons", &|| {
            let with_placeholders = crate::template::BUILTIN
                .iter()
                .filter(|(_, body)| crate::template::has_filled_placeholder(body))
                .count();
            crate::template::builtin_filled_patterns().len() == with_placeholders
        }),
        ("workflow install lines", &|| {
            crate::init::InstallSource::read_from("").is_ok()
        }),
        ("redaction", &|| {
            crate::transcript::Redactor::new(
                ["a-secret-value".to_owned()],
                &[r"(?i)tok\w+".to_owned()],
            )
            .is_ok()
        }),
    ];
    let mut failed = Vec::new();
    for (name, check) in checks {
        match catch_unwind(AssertUnwindSafe(check)) {
            Ok(true) => {}
            Ok(false) => failed.push(format!("{name}: gave a wrong answer")),
            Err(p) => failed.push(format!("{name}: {}", panic_message(&*p))),
        }
    }
    if failed.is_empty() {
        Ok(checks.len())
    } else {
        Err(failed)
    }
}

/// The text a panic carried (`panic!("...")` or `.expect("...")`).
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_builtin_pattern_compiles() {
        assert_eq!(super::patterns(), Ok(7));
    }
}
