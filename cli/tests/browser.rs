//! The console's page in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver, the fantoccini client), against the real binary and two real databases, as
//! a person uses it: pick two databases, dry run, start a sync and watch it move without a
//! reload to an identical target; a bad setting shown on its field; cancel; the page without
//! its token; a console that goes away and comes back. Screenshots of each page are kept in
//! `target/tmp/console-screenshots/` (the test command's artifacts).

mod support;

use dbsync_tests::Pair;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{tempdir, Console};

/// chromedriver on a free port, with a headless Chromium session.
struct Browser {
    driver: Child,
    client: Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Browser {
    async fn open() -> Browser {
        let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{driver_bin}: {e}: run scripts/test.sh, which installs chromium and chromium-driver")
            });
        let mut caps = serde_json::Map::new();
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900"],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let mut b =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            match b.capabilities(caps.clone()).connect(&url).await {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session from {driver_bin}: {e}"),
            }
        };
        Browser { driver, client }
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
    }

    /// Clicks the element `selector` finds (waiting for it).
    async fn click(&self, selector: &str) {
        self.css(selector)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
    }

    async fn text(&self, selector: &str) -> String {
        self.css(selector).await.text().await.expect("text")
    }

    /// Waits until `selector`'s text satisfies `ok`; answers it.
    async fn until_text(
        &self,
        selector: &str,
        ok: impl Fn(&str) -> bool,
        within: Duration,
    ) -> String {
        let started = Instant::now();
        loop {
            let t = self.text(selector).await;
            if ok(&t) {
                return t;
            }
            assert!(started.elapsed() < within, "{selector} reads {t:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.expect("script")
    }

    /// Saves a screenshot of the page as `name`.png among the test command's artifacts.
    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("save screenshot");
    }

    async fn close(self) {
        let _ = self.client.close().await;
        let mut d = self.driver;
        let _ = d.kill();
        let _ = d.wait();
    }
}

/// The console's page for `c`, opened with its token, its two databases picked.
async fn new_sync_page(b: &Browser, c: &Console) {
    b.client
        .goto(&format!("{}/?token={}", c.base, c.token))
        .await
        .expect("open the page");
    b.css("#source option[value=src]").await;
    b.css("#source")
        .await
        .select_by_value("src")
        .await
        .expect("source");
    b.css("#target")
        .await
        .select_by_value("dst")
        .await
        .expect("target");
}

#[tokio::test]
async fn a_person_dry_runs_and_starts_a_sync_in_the_browser_and_watches_it_reach_an_identical_target(
) {
    let p = Pair::new("browser_sync").await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, name text, pad text); CREATE TABLE notes (id int PRIMARY KEY, item int REFERENCES items, body text)")
        .await;
    p.source("INSERT INTO items SELECT g, 'item ' || g, repeat('x', 300) FROM generate_series(1, 500000) g; INSERT INTO notes SELECT g, g, E'tab\\there' FROM generate_series(1, 1000) g")
        .await;
    p.target("INSERT INTO items VALUES (-1, 'stale', '')").await;
    let c = Console::start(&p, "browser-sync");
    let b = Browser::open().await;
    new_sync_page(&b, &c).await;
    b.css("#chunk_size")
        .await
        .send_keys("4MiB")
        .await
        .expect("chunk size");
    b.shot("new-sync").await;

    b.click("#dry").await;
    b.css("#dry-title").await;
    let findings = b.text("#dry-out").await;
    assert!(
        findings.contains("public.items") && findings.contains("public.notes"),
        "{findings}"
    );
    b.shot("dry-run").await;
    // The dry run's tables are a picker: unticking one leaves it out.
    b.click("#picker input[value='public.notes']").await;
    assert_eq!(
        b.css("#exclude")
            .await
            .prop("value")
            .await
            .expect("exclude"),
        Some("public.notes".into())
    );
    b.click("#picker input[value='public.notes']").await;
    assert_eq!(
        b.css("#exclude")
            .await
            .prop("value")
            .await
            .expect("exclude"),
        Some(String::new())
    );
    assert_eq!(
        dbsync_tests::scalar(&p.target_url, "SELECT count(*)::text FROM items").await,
        "1",
        "the dry run changed nothing"
    );

    // A mark on the page: still there at the end means it never reloaded.
    b.js("window.__kept = 42; return null").await;
    b.click("#go").await;
    let mut values = Vec::<String>::new();
    let started = Instant::now();
    loop {
        let status = b.text("#job-status").await;
        let value = b
            .js("return String(document.getElementById('job-progress').value)")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string();
        if values.last() != Some(&value) {
            values.push(value);
        }
        if status == "running" && values.len() == 3 {
            b.shot("job-running").await;
        }
        if status != "running" && !status.is_empty() {
            assert_eq!(status, "succeeded", "{}", b.text("#job-error").await);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "{values:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        values.len() >= 3,
        "the progress bar changed at least twice while it ran: {values:?}"
    );
    assert_eq!(b.js("return window.__kept").await, json!(42), "no reload");
    assert_eq!(b.text("#job-rowcount").await, "501,000");
    assert_eq!(b.text("#job-percent").await, "100%");
    let tables = b.text("#table-rows").await;
    assert!(
        tables.contains("public.items") && tables.contains("500,000"),
        "{tables}"
    );
    b.shot("job-done").await;
    b.client
        .set_window_size(390, 844)
        .await
        .expect("phone width");
    b.shot("job-phone").await;
    b.client
        .set_window_size(1280, 900)
        .await
        .expect("desktop width");
    p.assert_identical().await;

    b.client
        .goto(&format!("{}/?token={}#jobs", c.base, c.token))
        .await
        .expect("jobs");
    b.until_text(
        "#job-rows",
        |t| t.contains("succeeded"),
        Duration::from_secs(10),
    )
    .await;
    b.shot("jobs").await;
    b.click("#nav-databases").await;
    b.click("button[data-test='0']").await;
    b.until_text(
        "#db-test",
        |t| t.contains("reachable"),
        Duration::from_secs(20),
    )
    .await;
    b.shot("databases").await;
    b.close().await;
}

#[tokio::test]
async fn a_bad_setting_shows_on_its_field_and_a_cancelled_sync_reads_cancelled() {
    let p = Pair::new("browser_cancel").await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, pad text)")
        .await;
    p.source("INSERT INTO items SELECT g, repeat('x', 500) FROM generate_series(1, 800000) g")
        .await;
    let c = Console::start(&p, "browser-cancel");
    let b = Browser::open().await;
    new_sync_page(&b, &c).await;
    b.css("#chunk_size")
        .await
        .send_keys("100")
        .await
        .expect("chunk size");
    b.click("#go").await;
    let shown = b
        .until_text(
            "[data-for=chunk_size]",
            |t| !t.is_empty(),
            Duration::from_secs(10),
        )
        .await;
    assert!(
        shown.contains("64"),
        "the API's message on the chunk size field: {shown}"
    );
    let class = b
        .css("#chunk_size")
        .await
        .attr("class")
        .await
        .expect("class");
    assert_eq!(class.as_deref(), Some("invalid"));
    b.shot("bad-setting").await;

    b.css("#chunk_size").await.clear().await.expect("clear");
    b.click("#atomic").await;
    b.click("#go").await;
    b.until_text("#job-status", |t| t == "running", Duration::from_secs(20))
        .await;
    b.click("#cancel").await;
    b.until_text("#job-status", |t| t == "cancelled", Duration::from_secs(60))
        .await;
    assert!(b.text("#job-error").await.contains("cancel"));
    b.shot("cancelled").await;
    assert_eq!(
        dbsync_tests::scalar(&p.target_url, "SELECT count(*)::text FROM items").await,
        "0",
        "an atomic sync rolled back"
    );
    b.close().await;
}

#[tokio::test]
async fn the_page_without_its_token_is_refused_and_a_console_that_goes_away_shows_a_banner_until_it_is_back(
) {
    let p = Pair::new("browser_guard").await;
    let port = free_port();
    let token = "browser-test-token-0123456789";
    let state = Arc::new(tempdir::Dir::new("browser-guard"));
    let start = || {
        let (src, dst) = (
            format!("src={}", p.source_url),
            format!("dst={}", p.target_url),
        );
        let listen = format!("127.0.0.1:{port}");
        let dir = state.0.display().to_string();
        let args = ["--state-dir", &dir, "--database", &src, "--database", &dst];
        Console::spawn(
            &args,
            &[
                ("DBSYNC_CONSOLE_LISTEN", &listen),
                ("DBSYNC_CONSOLE_TOKEN", token),
            ],
            state.clone(),
        )
    };
    let c = start();
    let b = Browser::open().await;
    b.client
        .goto(&format!("{}/", c.base))
        .await
        .expect("open without token");
    let body = b.text("body").await;
    assert!(body.contains("DbsyncUnauthorized"), "{body}");
    b.shot("no-token").await;

    new_sync_page(&b, &c).await;
    assert_eq!(
        b.css("#banner").await.is_displayed().await.ok(),
        Some(false)
    );
    drop(c);
    b.until_text("#banner", |t| t.contains("lost"), Duration::from_secs(10))
        .await;
    b.shot("connection-lost").await;
    let _back = start();
    let started = Instant::now();
    while b.css("#banner").await.is_displayed().await.unwrap_or(true) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the banner stays after the console is back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.close().await;
}
