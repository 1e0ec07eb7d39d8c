//! The manual pages in doc/ and the shell completions are generated from the command line's own
//! definitions (clap_mangen, clap_complete); this keeps doc/ in step with the CLI. After
//! changing an option: `cargo run -p concil -- man > doc/concil.1` and
//! `cargo run -p concil -- man SUBCOMMAND > doc/concil-SUBCOMMAND.1`.

use concil_test_support as support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn concil(args: &[&str]) -> Vec<u8> {
    let output = Command::new(support::pull::concil_binary())
        .args(args)
        .output()
        .expect("run concil");
    assert!(
        output.status.success(),
        "concil {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The subcommands `concil --help` lists.
fn subcommands() -> BTreeSet<String> {
    let help = String::from_utf8(concil(&["--help"])).expect("UTF-8 help");
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_manual_page_in_doc_is_what_the_cli_prints() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../doc");
    let expected: BTreeSet<String> = std::iter::once("concil.1".to_owned())
        .chain(subcommands().iter().map(|sub| format!("concil-{sub}.1")))
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&doc)
        .expect("doc/")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".1"))
        .collect();
    assert_eq!(present, expected, "one page per subcommand in doc/");
    for page in &expected {
        let args: Vec<&str> = match page
            .strip_prefix("concil-")
            .and_then(|p| p.strip_suffix(".1"))
        {
            Some(sub) => vec!["man", sub],
            None => vec!["man"],
        };
        let printed = concil(&args);
        let stored = std::fs::read(doc.join(page)).expect("read the page");
        assert!(
            printed == stored,
            "doc/{page} is out of date: regenerate it with `cargo run -p concil -- {}`",
            args.join(" ")
        );
        let text = String::from_utf8_lossy(&printed);
        assert!(
            text.starts_with(".ie \\n(.g") || text.contains(".TH"),
            "{page} is roff"
        );
    }
}

#[test]
fn completions_know_the_subcommands_and_options() {
    for shell in ["bash", "zsh", "fish", "elvish"] {
        let script = String::from_utf8(concil(&["completion", shell])).expect("UTF-8");
        for word in ["pull", "convert", "no-verify", "platform"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let error = Command::new(support::pull::concil_binary())
        .args(["completion", "powershell-7"])
        .output()
        .expect("run concil");
    assert_eq!(
        error.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}
