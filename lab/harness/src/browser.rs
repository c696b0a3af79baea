//! A headless Chromium (Debian's `chromium`) driven over the DevTools
//! protocol, for tests of a daemon's page in a real browser: load it, read
//! the rendered DOM, click with the mouse, take a screenshot.
//!
//! The protocol goes over `--remote-debugging-pipe` (JSON messages, each
//! ended by a NUL, on the browser's descriptors 3 and 4) rather than a
//! WebSocket: no client library and no port. A shell maps the browser's 3
//! and 4 to the pipes Rust gives it as stdin and stdout.
//!
//! Test code: what fails panics, with the end of the browser's log.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::sleep;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// How long one protocol call may take: a browser under software
/// emulation (the lab's VM) takes tens of seconds to start or to load a
/// page while other VMs share the machine.
const NAVIGATE_TRIES: usize = 5;
const CALL_TIMEOUT: Duration = Duration::from_secs(180);

/// A browser with one page (tab), killed when dropped.
#[derive(Debug)]
pub struct Browser {
    child: Child,
    to_browser: ChildStdin,
    from_browser: Receiver<Value>,
    next_id: u64,
    session: String,
    profile: PathBuf,
    log: PathBuf,
}

impl Browser {
    /// Starts `chromium --headless=new` in the lab namespace `netns`
    /// (`lab-director`), with a fresh profile and its log in `log`, and
    /// opens a blank page.
    pub fn start(netns: &str, log: &Path) -> Browser {
        let profile = std::env::temp_dir().join(format!("chromium-profile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile directory");
        let log_file = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("browser log {}: {e}", log.display()));
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, "sh", "-c"])
            .arg(r#"exec "$@" 3<&0 4>&1 </dev/null >&2"#)
            .args([
                "sh",
                "chromium",
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
            ])
            .args([
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--window-size=1400,900",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromium: {e}"));
        let to_browser = child.stdin.take().expect("browser stdin");
        let from = child.stdout.take().expect("browser stdout");
        let (tx, from_browser) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                if message.last() == Some(&0) {
                    message.pop();
                }
                if let Ok(value) = serde_json::from_slice(&message) {
                    if tx.send(value).is_err() {
                        return;
                    }
                }
                message.clear();
            }
        });
        let mut browser = Browser {
            child,
            to_browser,
            from_browser,
            next_id: 0,
            session: String::new(),
            profile,
            log: log.to_owned(),
        };
        let target = browser.send(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].clone();
        let attached = browser.send(
            None,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser.call("Page.enable", json!({}));
        browser
    }

    /// One call, to the page's session or (`None`) the browser; its
    /// result. Events that arrive meanwhile are dropped.
    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("JSON");
        bytes.push(0);
        if let Err(e) = self.to_browser.write_all(&bytes) {
            panic!("{method}: the browser is gone ({e}):\n{}", self.log_tail());
        }
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from_browser.recv_timeout(left) {
                Ok(answer) if answer["id"] == json!(id) => {
                    if let Some(error) = answer.get("error") {
                        panic!("{method}: {error}");
                    }
                    return answer["result"].clone();
                }
                Ok(_event) => {}
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{method}: no answer from the browser in {CALL_TIMEOUT:?}:\n{}",
                    self.log_tail()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{method}: the browser is gone:\n{}", self.log_tail())
                }
            }
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params)
    }

    /// Loads `url` (returns when the load starts: wait for what is needed
    /// with [`Browser::wait_for`]). A page that reloads itself can cancel
    /// the navigation (`net::ERR_ABORTED`, the page's own load won): it is
    /// tried again, a few times.
    pub fn navigate(&mut self, url: &str) {
        for _ in 0..NAVIGATE_TRIES {
            let result = self.call("Page.navigate", json!({"url": url}));
            match result.get("errorText").and_then(Value::as_str) {
                None => return,
                Some("net::ERR_ABORTED") => sleep(Duration::from_millis(200)),
                Some(error) => panic!("navigating to {url}: {error}"),
            }
        }
        panic!("navigating to {url}: cancelled {NAVIGATE_TRIES} times (net::ERR_ABORTED)");
    }

    /// The value of the JavaScript `expression` in the page, or the
    /// exception it threw.
    pub fn evaluate(&mut self, expression: &str) -> Result<Value, String> {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        match result.get("exceptionDetails") {
            Some(e) => Err(e["exception"]["description"]
                .as_str()
                .unwrap_or("an exception")
                .to_owned()),
            None => Ok(result["result"]["value"].clone()),
        }
    }

    /// Evaluates `expression` until it gives something other than `null`,
    /// `false` or an exception (the page may be loading); returns it,
    /// or panics naming `what` after `limit`.
    pub fn wait_for(&mut self, what: &str, expression: &str, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let last = self.evaluate(expression);
            match &last {
                Ok(Value::Null) | Ok(Value::Bool(false)) | Err(_) => {}
                Ok(value) => return value.clone(),
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not after {limit:?} (last: {last:?})"
            );
            sleep(Duration::from_millis(200));
        }
    }

    /// Clicks the middle of the first element `selector` matches, as a
    /// person does: the mouse pressed and released there.
    pub fn click(&mut self, selector: &str) {
        let selector_json = serde_json::to_string(selector).expect("JSON");
        let rect = self
            .evaluate(&format!(
                "(() => {{ const e = document.querySelector({selector_json}); \
                 if (!e) return null; e.scrollIntoView({{block: 'center'}}); \
                 const r = e.getBoundingClientRect(); \
                 return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()"
            ))
            .unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert!(!rect.is_null(), "nothing matches {selector}");
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": rect["x"], "y": rect["y"], "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Loads `url` afresh and clicks `selector` as soon as the new page has
    /// it: a page that reloads itself on a timer then has a whole period
    /// before it does, so what the click starts is not cut by a reload
    /// that was already under way.
    pub fn click_after_a_fresh_load(&mut self, url: &str, selector: &str, limit: Duration) {
        self.evaluate("window.labOldPage = true")
            .expect("the page before the load");
        self.navigate(url);
        let selector_json = serde_json::to_string(selector).expect("JSON");
        self.wait_for(
            &format!("{selector} on a fresh load of {url}"),
            &format!(
                "!window.labOldPage && document.readyState === 'complete' \
                 && document.querySelector({selector_json}) !== null"
            ),
            limit,
        );
        self.click(selector);
    }

    /// Turns the page's JavaScript off or on (from the next load on), as a
    /// person who blocks scripts has it; [`Browser::evaluate`] still works.
    pub fn set_javascript(&mut self, enabled: bool) {
        self.call(
            "Emulation.setScriptExecutionDisabled",
            json!({"value": !enabled}),
        );
    }

    /// Saves a PNG of the page as it is now to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
