//! The `signpost-fake-apiserver` binary: the first stdout line, and `--state` surviving SIGKILL.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{DEADLINE, Next, rv_of, service};

const BINARY: &str = env!("CARGO_BIN_EXE_signpost-fake-apiserver");

/// Starts the binary and returns it with the URL from its first stdout line.
async fn spawn(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(BINARY)
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("first line within the deadline")
        .unwrap()
        .expect("a first line");
    let url = first
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("first line is `listening URL`: {first}"))
        .to_owned();
    (child, url)
}

/// A client for a URL rather than an in-process server.
fn client(url: &str) -> crate::support::Api {
    crate::support::Api::for_url(url)
}

/// A killed (SIGKILL) and restarted process keeps its objects and continues at the same resourceVersion;
/// its history is gone, so a watch from before the restart gets the 410 ERROR event, like a restarted API
/// server's empty watch cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_file_survives_kill() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let args = |listen: &str| {
        vec![
            "--listen".to_owned(),
            listen.to_owned(),
            "--plain-http".to_owned(),
            "--state".to_owned(),
            state.to_str().unwrap().to_owned(),
            "--dir".to_owned(),
            dir.path().to_str().unwrap().to_owned(),
        ]
    };
    let first_args = args("127.0.0.1:0");
    let (mut first, url) = spawn(&first_args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let api = client(&url);
    for name in ["a", "b", "c"] {
        assert_eq!(
            api.post(
                "/api/v1/namespaces/default/services",
                service("default", name)
            )
            .await
            .status,
            201
        );
    }
    let deleted = api
        .delete("/api/v1/namespaces/default/services/b", None)
        .await;
    let last_rv = rv_of(&deleted.body);
    first.kill().await.unwrap();

    let listen = url.trim_start_matches("http://").to_owned();
    let second_args = args(&listen);
    let (_second, url) = spawn(&second_args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let api = client(&url);
    let list = api.get("/api/v1/namespaces/default/services").await;
    assert_eq!(
        rv_of(&list.body),
        last_rv,
        "the counter continues where it stopped"
    );
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "c"]);
    let mut watch = api
        .watch(&format!(
            "/api/v1/namespaces/default/services?watch=1&resourceVersion={}",
            last_rv - 1
        ))
        .await;
    let Next::Event(event) = watch.next().await else {
        panic!("expected ERROR");
    };
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
    let created = api
        .post(
            "/api/v1/namespaces/default/services",
            service("default", "d"),
        )
        .await;
    assert_eq!(rv_of(&created.body), last_rv + 1);
}
