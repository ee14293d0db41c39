//! `nettrace completions SHELL` and `nettrace man`: generated from the clap
//! definitions in `args`, so they always match the flags.

use std::io::{self, Write};

use clap::CommandFactory as _;

use super::args::{Args, Command};

/// Writes what `command` asks for to `out`. Generated in memory first:
/// clap_complete panics on a write error, and a closed pipe is not one.
pub fn run(command: Command, out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = Args::command();
    let mut text = Vec::new();
    match command {
        Command::Completions { shell } => clap_complete::generate(shell, &mut cmd, "nettrace", &mut text),
        // Section 8: a system administration command (it needs root).
        Command::Man => clap_mangen::Man::new(cmd).section("8").render(&mut text)?,
    }
    out.write_all(&text)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn generated(command: Command) -> String {
        let mut out = Vec::new();
        run(command, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn subcommands_leave_the_tracing_flags_alone() {
        let parse = |argv: &[&str]| Args::try_parse_from([&["nettrace"], argv].concat());
        assert_eq!(parse(&["--drop", "-p", "tcp"]).unwrap().command, None);
        assert_eq!(parse(&["man"]).unwrap().command, Some(Command::Man));
        assert_eq!(
            parse(&["completions", "fish"]).unwrap().command,
            Some(Command::Completions {
                shell: clap_complete::Shell::Fish
            })
        );
        // After tracing flags a subcommand's name is a filter EXPRESSION
        // word, which libpcap then judges.
        let late = parse(&["--drop", "man"]).unwrap();
        assert_eq!(
            (late.command, late.filters.expression),
            (None, vec!["man".to_owned()])
        );
        assert!(parse(&["completions", "nosuchshell"]).is_err());
    }

    #[test]
    fn scripts_and_man_page_name_the_flags() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let s = generated(Command::Completions { shell });
            assert!(
                s.contains("drop-stack") && s.contains("trace-matcher"),
                "{shell}: {s}"
            );
        }
        let man = generated(Command::Man);
        assert!(man.starts_with(".ie") || man.contains(".TH nettrace 8"), "{man}");
        assert!(man.contains("\\-\\-drop"), "{man}");
    }
}
