//! What the console's tests share: `dbsync console` started on a free port over a pair's
//! databases (or the emulator's deployed API), and its API called over raw HTTP. Each test
//! file uses a part of it.
#![allow(dead_code)]

use dbsync_tests::Pair;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A console on a free port over the two databases of `p` (named `src` and `dst`).
pub struct Console {
    pub child: Child,
    pub base: String,
    pub token: String,
    pub state: std::sync::Arc<tempdir::Dir>,
}

pub mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(hint: &str) -> Self {
            let d = std::env::temp_dir().join(format!("dbsync-{hint}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).expect("state dir");
            Dir(d)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Console {
    pub fn start(p: &Pair, hint: &str) -> Console {
        Console::on(p, std::sync::Arc::new(tempdir::Dir::new(hint)))
    }

    /// A console keeping its jobs in `state` (a second console over the first one's jobs).
    pub fn on(p: &Pair, state: std::sync::Arc<tempdir::Dir>) -> Console {
        let dir = state.0.display().to_string();
        let src = format!("src={}", p.source_url);
        let dst = format!("dst={}", p.target_url);
        let args = ["--state-dir", &dir, "--database", &src, "--database", &dst];
        Console::spawn(&args, &[("DBSYNC_CONSOLE_LISTEN", "127.0.0.1:0")], state)
    }

    /// A console of the deployed API in the emulator, signing with `secret_key`.
    pub fn cloud(secret_key: &str) -> Console {
        let api = dbsync_tests::cloud::api_url();
        let env = [
            ("DBSYNC_CONSOLE_LISTEN", "127.0.0.1:0"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", secret_key),
            ("AWS_REGION", "us-east-1"),
        ];
        let state = std::sync::Arc::new(tempdir::Dir::new("cloud"));
        Console::spawn(&["--api", &api], &env, state)
    }

    pub fn spawn(
        args: &[&str],
        env: &[(&str, &str)],
        state: std::sync::Arc<tempdir::Dir>,
    ) -> Console {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dbsync"))
            .args(["console"])
            .args(args)
            .envs(env.iter().copied())
            .env_remove("AWS_PROFILE")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the console");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the console prints its address");
        let url = line
            .trim()
            .strip_prefix("dbsync console: ")
            .expect("an address")
            .to_string();
        let (base, token) = url.split_once("/?token=").expect("a token in the address");
        Console {
            child,
            base: base.to_string(),
            token: token.to_string(),
            state,
        }
    }

    /// One HTTP/1.1 request; the status and the body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, String) {
        let host = self.base.trim_start_matches("http://");
        let mut s = TcpStream::connect(host).expect("connect to the console");
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("content-type: application/json\r\n\r\n");
        req.push_str(&body);
        s.write_all(req.as_bytes()).expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// A call of the console's API (`/api/ROUTE`), its answer held to the API's document.
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let (status, text) = self.call(method, path, &[("x-dbsync-token", &self.token)], body);
        let answer = serde_json::from_str(&text).unwrap_or(Value::Null);
        let route = path.trim_start_matches("/api");
        let route = route.split('?').next().unwrap_or(route);
        dbsync_tests::openapi::assert_answer(method, route, status, &answer);
        (status, answer)
    }

    /// The job's event stream (server-sent events) until the job ends: every job pushed.
    pub fn events(&self, id: &str) -> Vec<Value> {
        let host = self.base.trim_start_matches("http://");
        let mut s = TcpStream::connect(host).expect("connect to the console");
        s.set_read_timeout(Some(Duration::from_secs(60))).ok();
        // HTTP/1.0: the stream comes unchunked and ends when the job does.
        let req = format!(
            "GET /api/syncs/{id}/events?token={} HTTP/1.0\r\nHost: {host}\r\n\r\n",
            self.token
        );
        s.write_all(req.as_bytes()).expect("send");
        let mut pushed = Vec::new();
        let started = Instant::now();
        for line in BufReader::new(s).lines() {
            let Ok(line) = line else { break };
            // A job that never ends fails the test (its last push shows where it stood).
            if started.elapsed() > Duration::from_secs(300) {
                break;
            }
            if let Some(data) = line.strip_prefix("data: ") {
                let job: Value = serde_json::from_str(data).expect("a job");
                let running = job["status"] == "running" || job["status"] == "queued";
                pushed.push(job);
                if !running {
                    break;
                }
            }
        }
        pushed
    }

    /// Polls the job until it is not running, returning every progress seen on the way.
    pub fn wait(&self, id: &str) -> (Value, Vec<Value>) {
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            let (_, job) = self.api("GET", &format!("/api/syncs/{id}"), None);
            seen.push(job["progress"].clone());
            if job["status"] != "running" || started.elapsed() > Duration::from_secs(240) {
                return (job, seen);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
