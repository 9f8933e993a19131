//! `cargo xtask chronik build`: builds `chronik-server` in a Chronik checkout, deciding
//! `--features raft` from `cargo metadata` and overriding the slow release profile by env vars.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use xshell::{cmd, Shell};

/// Build or inspect Chronik.
#[derive(Debug, Args)]
pub struct Chronik {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Build chronik-server in a checkout and print the binary path and its version.
    Build(BuildArgs),
}

/// Where Chronik comes from: a checkout to build, or a binary to use as is.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// A Chronik checkout (e.g. ../chronik-stream) to build chronik-server in.
    #[arg(long, value_name = "DIR")]
    pub chronik_dir: Option<PathBuf>,
    /// Use this chronik-server binary and skip building.
    #[arg(long, value_name = "PATH", conflicts_with = "chronik_dir")]
    pub chronik_bin: Option<PathBuf>,
    /// fast: the checkout's release profile without LTO, 16 codegen units, no debug info
    /// (set through CARGO_PROFILE_* env vars; the checkout is not touched). release: its own.
    #[arg(long, value_enum, default_value_t = Profile::Fast)]
    pub profile: Profile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    Fast,
    Release,
}

impl Chronik {
    pub fn run(self, sh: &Shell) -> anyhow::Result<u8> {
        match self.action {
            Action::Build(args) => {
                args.resolve(sh)?;
                Ok(0)
            }
        }
    }
}

impl BuildArgs {
    /// The chronik-server binary to use: `--chronik-bin` as is, else built from `--chronik-dir`.
    pub fn resolve(&self, sh: &Shell) -> anyhow::Result<PathBuf> {
        if let Some(bin) = &self.chronik_bin {
            let bin = crate::absolute(bin);
            if !bin.is_file() {
                bail!(
                    "--chronik-bin {} is not a file; pass a built chronik-server, or --chronik-dir to build one",
                    bin.display()
                );
            }
            print_version(sh, &bin);
            return Ok(bin);
        }
        let Some(dir) = &self.chronik_dir else {
            bail!(
                "no Chronik given: pass --chronik-dir DIR (a checkout of https://github.com/lspecian/chronik-stream, \
                 e.g. `git clone https://github.com/lspecian/chronik-stream ../chronik-stream`) or --chronik-bin PATH"
            );
        };
        build(sh, &crate::absolute(dir), self.profile, "--chronik-dir")
    }
}

/// Builds chronik-server in the checkout `dir` (`what` names it in messages: the flag that
/// gave it) and returns the binary.
pub fn build(sh: &Shell, dir: &Path, profile: Profile, what: &str) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!("{what} {} has no Cargo.toml: it must be a Chronik checkout", dir.display());
    }
    check_protoc(sh)?;
    eprintln!("xtask: reading {} with cargo metadata", manifest.display());
    let metadata = crate::clean_cmd(cmd!(sh, "cargo metadata --format-version 1 --no-deps --manifest-path {manifest}"))
        .read()
        .with_context(|| format!("cargo metadata failed for {}", manifest.display()))?;
    let decision = decide(&metadata)?;
    eprintln!("xtask: {}", decision.explain());
    let _dir = sh.push_dir(dir);
    let features: Vec<&str> = if decision.raft_feature { vec!["--features", "raft"] } else { vec![] };
    let mut build = cmd!(sh, "cargo build --release -p chronik-server --bin chronik-server {features...}");
    if profile == Profile::Fast {
        eprintln!("xtask: profile fast: CARGO_PROFILE_RELEASE_LTO=false CODEGEN_UNITS=16 DEBUG=0 (the checkout is not modified)");
        build = build
            .env("CARGO_PROFILE_RELEASE_LTO", "false")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "0");
    } else {
        eprintln!("xtask: profile release: the checkout's own [profile.release] (LTO; slow on small machines)");
    }
    eprintln!("$ {build}");
    // A std Command, so that SIGTERM reaches cargo (see crate::spawn_child).
    let status = crate::run_child(crate::clean_command(build.into()))?;
    if !status.success() {
        crate::check_not_interrupted()?;
        bail!("building chronik-server failed (see cargo's output above)");
    }
    let bin = decision.target_dir.join("release").join("chronik-server");
    if !bin.is_file() {
        bail!("cargo reported success but {} does not exist", bin.display());
    }
    eprintln!("xtask: chronik-server built: {}", bin.display());
    print_version(sh, &bin);
    Ok(bin)
}

fn check_protoc(sh: &Shell) -> anyhow::Result<()> {
    let protoc = std::env::var("PROTOC").unwrap_or_else(|_| "protoc".to_string());
    match cmd!(sh, "{protoc} --version").quiet().ignore_stderr().read() {
        Ok(v) => {
            eprintln!("xtask: protoc found: {v}");
            Ok(())
        }
        Err(_) => bail!(
            "protoc (the Protocol Buffers compiler) is needed to build Chronik and was not found as `{protoc}`; \
             install it (Debian/Ubuntu: `sudo apt-get install protobuf-compiler`, macOS: `brew install protobuf`) \
             or set PROTOC to its path"
        ),
    }
}

fn print_version(sh: &Shell, bin: &Path) {
    // NO_COLOR: Chronik logs while printing its version; keep those lines free of colour codes.
    match cmd!(sh, "{bin} version").env("NO_COLOR", "1").quiet().ignore_stderr().read() {
        Ok(v) => eprintln!("xtask: {} version: {}", bin.display(), version_line(&v)),
        Err(e) => eprintln!("xtask: warning: `{} version` failed: {e}", bin.display()),
    }
}

/// The line of `chronik-server version` output that names the version (it also logs).
fn version_line(output: &str) -> String {
    let clean: Vec<&str> = output.lines().collect();
    clean
        .iter()
        .find(|l| l.trim_start().starts_with("Chronik Server v"))
        .or_else(|| clean.iter().rev().find(|l| !l.trim().is_empty()))
        .map(|l| l.trim().to_string())
        .unwrap_or_default()
}

/// What `cargo metadata` says about the build.
#[derive(Debug, PartialEq, Eq)]
pub struct Decision {
    pub raft_feature: bool,
    pub target_dir: PathBuf,
    pub version: String,
}

impl Decision {
    fn explain(&self) -> String {
        if self.raft_feature {
            format!(
                "chronik-server {} declares a `raft` feature (older Chronik): building with --features raft",
                self.version
            )
        } else {
            format!(
                "chronik-server {} declares no `raft` feature (Raft is built in): building without it",
                self.version
            )
        }
    }
}

/// Reads `cargo metadata --no-deps` output.
pub fn decide(metadata: &str) -> anyhow::Result<Decision> {
    let v: serde_json::Value =
        serde_json::from_str(metadata).context("cargo metadata printed something that is not JSON")?;
    let packages = v["packages"].as_array().context("cargo metadata has no `packages`")?;
    let Some(server) = packages.iter().find(|p| p["name"] == "chronik-server") else {
        bail!("this checkout has no `chronik-server` package; is it a Chronik checkout?");
    };
    let raft_feature = server["features"].as_object().is_some_and(|f| f.contains_key("raft"));
    let target_dir = PathBuf::from(v["target_directory"].as_str().context("cargo metadata has no `target_directory`")?);
    let version = server["version"].as_str().unwrap_or("?").to_string();
    Ok(Decision { raft_feature, target_dir, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(features: &str) -> String {
        format!(
            r#"{{"packages":[{{"name":"chronik-common","version":"2.10.4","features":{{}}}},
            {{"name":"chronik-server","version":"2.10.4","features":{features}}}],
            "target_directory":"/src/chronik/target","version":1}}"#
        )
    }

    #[test]
    fn raft_feature_is_added_exactly_when_declared() {
        let current = decide(&metadata(r#"{"default":["search","backup"],"search":[],"backup":[]}"#)).unwrap();
        assert!(!current.raft_feature);
        assert_eq!(current.target_dir, PathBuf::from("/src/chronik/target"));
        assert!(current.explain().contains("building without it"));
        let old = decide(&metadata(r#"{"default":[],"raft":["dep:raft"]}"#)).unwrap();
        assert!(old.raft_feature);
        assert!(old.explain().contains("with --features raft"));
    }

    #[test]
    fn version_line_skips_log_lines() {
        let out =
            "\u{1b}[2m2026-11-26T12:35:24Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m chronik_server: Chronik Server v2.10.4\n\
                   Chronik Server v2.10.4\nBuild features:\n  - Search: enabled\n";
        assert_eq!(version_line(out), "Chronik Server v2.10.4");
        assert_eq!(version_line("chronik 1.0\n"), "chronik 1.0");
    }

    #[test]
    fn a_checkout_without_the_server_package_is_refused() {
        let err = decide(r#"{"packages":[{"name":"other","features":{}}],"target_directory":"/t"}"#).unwrap_err();
        assert!(err.to_string().contains("no `chronik-server` package"), "{err}");
    }
}
