//! `cargo xtask doctor`: checks this machine for the tools the harness build, Chronik's build,
//! `.ci/run` and the Action's install script need, one line each, without building anything.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::Args;

/// Flags of `cargo xtask doctor` (none; its help text is on `Task::Doctor` in main.rs).
#[derive(Debug, Args)]
pub struct Doctor {}

/// One tool looked for.
struct Tool {
    /// What the line is about.
    name: &'static str,
    /// The command run to find it (its first output line is shown).
    probe: &'static [&'static str],
    /// An environment variable that names the program instead of `probe[0]`.
    program_env: Option<&'static str>,
    /// Missing it fails the doctor (exit 1).
    required: bool,
    /// What needs it.
    needed_for: &'static str,
    /// Debian/Ubuntu package.
    package: &'static str,
}

const TOOLS: &[Tool] = &[
    Tool {
        name: "cc",
        probe: &["cc", "--version"],
        program_env: Some("CC"),
        required: true,
        needed_for: "building the harness (ring and librdkafka compile C)",
        package: "build-essential",
    },
    Tool {
        name: "c++",
        probe: &["c++", "--version"],
        program_env: Some("CXX"),
        required: true,
        needed_for: "building the harness (librdkafka's configure requires a C++ compiler)",
        package: "build-essential",
    },
    Tool {
        name: "make",
        probe: &["make", "--version"],
        program_env: None,
        required: true,
        needed_for: "building the harness (librdkafka is built with make)",
        package: "build-essential",
    },
    Tool {
        name: "protoc",
        probe: &["protoc", "--version"],
        program_env: Some("PROTOC"),
        required: false,
        needed_for: "only to build Chronik (--clone, --chronik-dir; not --chronik-bin or --stand-in)",
        package: "protobuf-compiler",
    },
    Tool {
        name: "python3",
        probe: &["python3", "-c", "import venv, ensurepip, sys; print('Python', sys.version.split()[0], 'with venv')"],
        program_env: None,
        required: false,
        needed_for: "only for .ci/run (its Python tools live in a virtual environment)",
        package: "python3-venv",
    },
    Tool {
        name: "curl",
        probe: &["curl", "--version"],
        program_env: None,
        required: false,
        needed_for: "only for scripts/install-toxiproxy.sh (the Action's Toxiproxy install)",
        package: "curl",
    },
    Tool {
        name: "sha256sum",
        probe: &["sha256sum", "--version"],
        program_env: None,
        required: false,
        needed_for: "only for scripts/install-toxiproxy.sh (checks the download)",
        package: "coreutils",
    },
    Tool {
        name: "ip",
        probe: &["ip", "-V"],
        program_env: None,
        required: false,
        needed_for: "only for --network netns and the netns_* tests (with tc, as root)",
        package: "iproute2",
    },
    Tool {
        name: "nft",
        probe: &["nft", "--version"],
        program_env: None,
        required: false,
        needed_for: "only for --network netns and the netns_* tests (IP-layer faults, as root)",
        package: "nftables",
    },
    Tool {
        name: "libfaketime",
        probe: &[
            "sh",
            "-c",
            "for f in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do \
             [ -f \"$f\" ] && echo \"$f\" && exit 0; done; exit 1",
        ],
        program_env: None,
        required: false,
        needed_for: "only for the clock-skew scenarios (else N/A; CHRONIK_CHAOS_LIBFAKETIME names another copy)",
        package: "libfaketime",
    },
    Tool {
        name: "git",
        probe: &["git", "--version"],
        program_env: None,
        required: false,
        needed_for: "only for `cargo xtask chaos --clone`",
        package: "git",
    },
];

/// A check's outcome: ok, and the line's text.
struct Line {
    ok: bool,
    name: &'static str,
    text: String,
}

impl Doctor {
    pub fn run(self) -> u8 {
        let mut lines: Vec<(Line, bool)> = TOOLS.iter().map(|t| (check(t), t.required)).collect();
        lines.push((toxiproxy(), true));
        let mut missing_required = Vec::new();
        for (line, required) in &lines {
            println!("{:<8} {:<12} {}", if line.ok { "ok" } else { "missing" }, line.name, line.text);
            if !line.ok && *required {
                missing_required.push(line.name);
            }
        }
        if missing_required.is_empty() {
            println!("every required tool is present (a `missing` line above, if any, is optional)");
            0
        } else {
            println!("required and missing: {}", missing_required.join(", "));
            1
        }
    }
}

fn check(tool: &Tool) -> Line {
    let program =
        tool.program_env.and_then(std::env::var_os).filter(|p| !p.is_empty()).unwrap_or_else(|| tool.probe[0].into());
    let found = first_line(Command::new(&program).args(&tool.probe[1..]));
    let need = format!("{}: {}", if tool.required { "required" } else { "optional" }, tool.needed_for);
    match found {
        Some(version) => Line { ok: true, name: tool.name, text: version },
        None => {
            Line { ok: false, name: tool.name, text: format!("{need}; install: sudo apt-get install {}", tool.package) }
        }
    }
}

/// A real toxiproxy-server ($TOXIPROXY_BIN, else PATH) with its version; without one the
/// embedded server is used, which is not a failure. A $TOXIPROXY_BIN that is not an
/// executable is: the harness refuses it.
fn toxiproxy() -> Line {
    let name = "toxiproxy";
    let (bin, found_by) = match std::env::var_os("TOXIPROXY_BIN").filter(|v| !v.is_empty()) {
        Some(bin) => (Some(PathBuf::from(bin)), "$TOXIPROXY_BIN"),
        None => (on_path("toxiproxy-server"), "PATH"),
    };
    let Some(bin) = bin else {
        return Line {
            ok: true,
            name,
            text: "no toxiproxy-server on PATH or $TOXIPROXY_BIN: the embedded compatible server will be used \
                   (optional: scripts/install-toxiproxy.sh DIR installs the real one)"
                .to_string(),
        };
    };
    match first_line(Command::new(&bin).arg("-version")) {
        Some(version) => Line { ok: true, name, text: format!("{} (from {found_by}): {version}", bin.display()) },
        None => Line {
            ok: false,
            name,
            text: format!(
                "required: {found_by} names {}, which does not run (`-version` failed) and the harness would \
                 refuse it; fix it, or unset it to use the embedded server",
                bin.display()
            ),
        },
    }
}

/// The first non-empty line `cmd` prints (stdout, else stderr) when it succeeds.
fn first_line(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdin(Stdio::null()).output().ok().filter(|o| o.status.success())?;
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("(no version printed)");
    Some(line.chars().take(90).collect())
}

/// `name` in a directory of PATH, when it is an executable file.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
