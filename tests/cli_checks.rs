//! The checks `chronik-chaos chaos` and `cluster start` make before anything starts, as a user
//! runs them: a `--chronik-bin` that is not Chronik, a scenario named twice, and ports that are
//! taken (found by `chaos --dry-run`, which `cargo xtask chaos` runs before any build) are each
//! refused with exit 2 and a message naming the flag as the user's command takes it.

mod support;

use std::process::{Command, Output};

use chronik_chaos::topology::Plan;

fn chronik_chaos_cli(args: &[&str], invoked_as: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chronik-chaos"));
    cmd.args(args);
    support::as_invoked(&mut cmd, invoked_as)
}

use support::text;

#[test]
fn a_chronik_bin_that_is_not_chronik_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = chronik_chaos_cli(&["chaos", "--chronik-bin", "/bin/true", "--out", out_dir.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains(
            "error: --chronik-bin / $CHRONIK_BIN names /bin/true, which is not a Chronik server: \
             `/bin/true version` (exit code 0) printed nothing"
        ),
        "{t}"
    );
    assert!(!out_dir.join("results.json").exists() && !out_dir.join("toxiproxy.log").exists(), "nothing ran: {t}");

    // The same check for `cluster start`, with the binary from $CHRONIK_BIN.
    let state = dir.path().join("state");
    let out = Command::new(env!("CARGO_BIN_EXE_chronik-chaos"))
        .args(["cluster", "start", "--state-dir", state.to_str().unwrap()])
        .env("CHRONIK_BIN", "/bin/echo")
        .env_remove("CHRONIK_CHAOS_INVOKED_AS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--chronik-bin / $CHRONIK_BIN names /bin/echo"), "{}", text(&out));
    assert!(text(&out).contains("printed \"version\", which names neither Chronik"), "{}", text(&out));
    assert!(!state.join("cluster.json").exists() && !state.join("cluster-toxiproxy.log").exists());

    // The stand-in passes the check: it names itself, not Chronik.
    let out = Command::new(env!("CARGO_BIN_EXE_chronik-stand-in-node")).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("chronik-chaos stand-in broker v"));
}

#[test]
fn a_scenario_named_twice_is_refused_even_in_a_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = ["chaos", "--dry-run", "--out", out, "--scenario", "baseline", "--scenario", "bridge"];
    let twice = [&args[..], &["--scenario", "baseline"]].concat();
    let out = chronik_chaos_cli(&twice, Some("cargo xtask chaos"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: --scenario baseline is given more than once; name each scenario once"
    );
}

#[test]
fn a_dry_run_names_every_taken_port_its_holder_and_the_flag_that_moves_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = support::free_standin_base(21000);
    let plan = Plan::new(chronik_chaos::topology::TopologySpec { base_port: base, ..Default::default() }).unwrap();
    let proxy_port = plan.proxies[0].listen.port();
    let _proxy = std::net::TcpListener::bind(("127.0.0.1", proxy_port)).unwrap();
    let api = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api_addr = api.local_addr().unwrap().to_string();
    let args = [
        "chaos",
        "--dry-run",
        "--out",
        dir.path().to_str().unwrap(),
        "--base-port",
        &base.to_string(),
        "--toxiproxy-listen",
        &api_addr,
    ];
    let me = std::process::id();
    let direct = chronik_chaos_cli(&args, None);
    assert_eq!(direct.status.code(), Some(2), "{}", text(&direct));
    let t = text(&direct);
    assert!(t.contains(&format!("port {proxy_port} (proxy kafka-n1) is taken, held by pid {me}")), "{t}");
    let api_port = api.local_addr().unwrap().port();
    assert!(t.contains(&format!("port {api_port} (the Toxiproxy API) is taken, held by pid {me}")), "{t}");
    assert!(t.contains("for node and proxy ports pass `--base-port PORT`"), "{t}");
    assert!(t.contains("for the Toxiproxy API pass `--toxiproxy-listen ADDR`"), "{t}");
    assert!(!t.contains("would run"), "{t}");

    // Through `cargo xtask chaos`, the binary's own flags go after `--`.
    let via = chronik_chaos_cli(&args, Some("cargo xtask chaos"));
    assert_eq!(via.status.code(), Some(2), "{}", text(&via));
    let t = text(&via);
    assert!(t.contains("for node and proxy ports pass `cargo xtask chaos -- --base-port PORT`"), "{t}");
    assert!(t.contains("for the Toxiproxy API pass `cargo xtask chaos -- --toxiproxy-listen ADDR`"), "{t}");
    assert!(t.contains("a cluster from another shell: `cargo xtask cluster stop`"), "{t}");
}

#[test]
fn a_dry_run_with_free_ports_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let base = support::free_standin_base(21000);
    let api = support::free_addr();
    let plan = Plan::new(chronik_chaos::topology::TopologySpec { base_port: base, ..Default::default() }).unwrap();
    let base = base.to_string();
    let args = ["chaos", "--dry-run", "--out", dir.path().to_str().unwrap(), "--base-port", &base];
    let out = chronik_chaos_cli(&[&args[..], &["--toxiproxy-listen", &api.to_string()]].concat(), None);
    match chronik_chaos::cluster::preflight_ports(&plan, Some(api)) {
        Ok(()) => {
            assert_eq!(out.status.code(), Some(0), "{}", text(&out));
            let t = text(&out);
            assert!(t.contains(&format!("ports: free (toxiproxy API {api}, nodes and proxies from {base}")), "{t}");
        }
        // Chronik's fixed ports are shared by every run on this machine: someone else holds one.
        Err(busy) => {
            assert_eq!(out.status.code(), Some(2), "{}", text(&out));
            assert!(text(&out).contains(&busy.taken[0].to_string()), "{}", text(&out));
        }
    }
    assert!(!dir.path().join("results.json").exists(), "a dry run runs nothing");
}
