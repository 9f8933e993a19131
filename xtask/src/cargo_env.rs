//! Which environment variables cargo sets for a crate it runs or builds (shared with
//! tests/xtask_chaos.rs, which includes this file).

/// Whether `name` is a variable cargo sets for a program it runs or builds (`cargo run` sets
/// them for xtask, `cargo test` for a test that starts xtask) rather than one that configures
/// cargo. A nested cargo must not inherit them: build scripts (ring's, for one) declare
/// `rerun-if-env-changed` on them and cargo compares with its own environment, so a nested
/// build that sees them rebuilds those crates and the next plain `cargo test` rebuilds them
/// again. CARGO, CARGO_HOME, CARGO_TARGET_DIR, CARGO_BUILD_*, CARGO_PROFILE_*, RUSTUP_* and the
/// like are kept.
pub fn set_by_cargo_for_a_crate(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    const PREFIXES: &[&str] = &["CARGO_PKG_", "CARGO_BIN_EXE_", "CARGO_CFG_", "CARGO_FEATURE_"];
    NAMES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}
