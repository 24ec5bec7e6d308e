//! README.md lists every command in the command table and every
//! configuration directive, generated from the tables themselves. When a
//! command or directive is added, run
//! `REDOUBT_BLESS=1 cargo test -p redoubt-tests --test readme` to update the
//! README's generated sections.

use redoubt_server::commands::families;
use redoubt_server::config::{HIDDEN, PARAMS};
use std::collections::BTreeMap;
use std::path::PathBuf;

const CMD_BEGIN: &str =
    "<!-- BEGIN commands (generated from the command table; see tests/tests/readme.rs) -->";
const CMD_END: &str = "<!-- END commands -->";
const DIR_BEGIN: &str =
    "<!-- BEGIN directives (generated from the parameter table; see tests/tests/readme.rs) -->";
const DIR_END: &str = "<!-- END directives -->";

fn readme_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md")
}

fn commands_section() -> String {
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for family in families() {
        for spec in family {
            groups
                .entry(spec.group)
                .or_default()
                .push(spec.name.to_ascii_uppercase());
        }
    }
    let mut out = String::new();
    let total: usize = groups.values().map(Vec::len).sum();
    out.push_str(&format!("{total} commands:\n\n"));
    for (group, mut names) in groups {
        names.sort();
        let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        out.push_str(&format!("- **{group}**: {}\n", list.join(", ")));
    }
    out
}

fn directives_section() -> String {
    let list: Vec<String> = PARAMS
        .iter()
        .filter(|p| p.flags & HIDDEN == 0)
        .map(|p| match p.alias {
            Some(a) => format!("`{}` (alias `{a}`)", p.name),
            None => format!("`{}`", p.name),
        })
        .collect();
    format!("{} directives: {}\n", list.len(), list.join(", "))
}

/// The text between `begin` and `end`, without the marker lines.
fn between<'a>(text: &'a str, begin: &str, end: &str) -> Option<&'a str> {
    let start = text.find(begin)? + begin.len();
    let stop = start + text[start..].find(end)?;
    Some(text[start..stop].trim_matches('\n'))
}

fn replace_between(text: &str, begin: &str, end: &str, body: &str) -> String {
    let start = text.find(begin).expect("begin marker") + begin.len();
    let stop = start + text[start..].find(end).expect("end marker");
    format!("{}\n{}\n{}", &text[..start], body.trim_end(), &text[stop..])
}

#[test]
fn readme_lists_every_command_and_directive() {
    let path = readme_path();
    let text = std::fs::read_to_string(&path).expect("README.md");
    let sections = [
        (CMD_BEGIN, CMD_END, commands_section()),
        (DIR_BEGIN, DIR_END, directives_section()),
    ];
    if std::env::var_os("REDOUBT_BLESS").is_some() {
        let mut t = text.clone();
        for (b, e, body) in &sections {
            t = replace_between(&t, b, e, body);
        }
        std::fs::write(&path, t).expect("write README.md");
        return;
    }
    for (b, e, body) in &sections {
        let found = between(&text, b, e)
            .unwrap_or_else(|| panic!("README.md lacks the section {b} ... {e}"));
        assert!(
            found == body.trim_end(),
            "README.md's generated section is out of date; run\n  \
             REDOUBT_BLESS=1 cargo test -p redoubt-tests --test readme\n\
             expected:\n{body}\nfound:\n{found}"
        );
    }
    // And every command is named somewhere in the section, whatever its group.
    let cmds = between(&text, CMD_BEGIN, CMD_END).unwrap_or_default();
    for family in families() {
        for spec in family {
            let name = format!("`{}`", spec.name.to_ascii_uppercase());
            assert!(cmds.contains(&name), "README.md does not list {name}");
        }
    }
}

#[test]
fn section_helpers_work() {
    let t = "a\nB\nold\nE\nz";
    assert_eq!(between(t, "B", "E"), Some("old"));
    assert_eq!(replace_between(t, "B", "E", "new"), "a\nB\nnew\nE\nz");
}
