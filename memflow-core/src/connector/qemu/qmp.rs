//! A minimal QMP (QEMU Machine Protocol) client: line-delimited JSON over a unix socket.
//!
//! The session is: QEMU's greeting, `qmp_capabilities`, then commands, each answered by one
//! `return` or `error` message; asynchronous `event` messages may come in between and are
//! kept (the most recent [`QMP_EVENTS_MAX`]) for [`Qmp::wait_event`]. HMP commands
//! (`info mtree -f`, `info registers -a`, `xp ...`) go through `human-monitor-command`, whose
//! reply is the HMP output as one string.
//!
//! The `qemu` connector, the project's tasks (`cargo xtask fixtures` dumps guest memory with
//! it) and the live-QEMU tests use this client. A QMP server socket serves one client at a
//! time, so a user connects, asks what it needs and disconnects (drops the client) right away.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

/// How long to wait for any one reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest message accepted (`info mtree -f` of a large guest is well under 1 MiB).
pub const QMP_MESSAGE_MAX: u64 = 16 << 20;
/// The most asynchronous events skipped while waiting for one reply, and the most kept for
/// [`Qmp::wait_event`] (the oldest go first).
pub const QMP_EVENTS_MAX: usize = 4096;

/// A connected QMP session in command mode. Errors carry a kind; QEMU's own description of
/// a failure is logged (`log::warn!`).
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// The start of a message whose end has not arrived yet (a read timed out).
    partial: String,
    /// Events received while waiting for replies, oldest first.
    events: VecDeque<Value>,
}

impl Qmp {
    /// Connects to the QMP server socket at `path`, reads the greeting and enters command
    /// mode. The socket must not be in use by another client (QEMU would not answer).
    pub fn connect(path: &Path) -> Result<Qmp> {
        let stream = UnixStream::connect(path).map_err(|e| {
            Error::new(ErrorOrigin::Connector, ErrorKind::of_io(&e))
                .with_reason(format_args!("QMP: cannot connect to {}: {e}", path.display()))
        })?;
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(|e| Error::new(ErrorOrigin::Connector, ErrorKind::Io).with_reason(format_args!("QMP: {}", e)))?;
        let writer = stream
            .try_clone()
            .map_err(|e| Error::new(ErrorOrigin::Connector, ErrorKind::Io).with_reason(format_args!("QMP: {}", e)))?;
        let mut qmp = Qmp { reader: BufReader::new(stream), writer, partial: String::new(), events: VecDeque::new() };
        let greeting = qmp.message()?;
        if greeting.get("QMP").is_none() {
            return Err(Error::new(ErrorOrigin::Connector, ErrorKind::Malformed)
                .with_reason(format_args!("QMP: {} did not greet as QMP: {greeting}", path.display())));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Reads the next message, waiting at most the socket's read timeout: `None` if it passed
    /// first. What arrived of an unfinished message is kept for the next call.
    fn next_message(&mut self) -> Result<Option<Value>> {
        let room = QMP_MESSAGE_MAX.saturating_sub(self.partial.len() as u64);
        match (&mut self.reader).take(room).read_line(&mut self.partial) {
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Ok(None),
            Err(e) => {
                Err(Error::new(ErrorOrigin::Connector, ErrorKind::Io).with_reason(format_args!("QMP: no reply: {e}")))
            }
            Ok(_) if self.partial.ends_with('\n') => {
                let line = std::mem::take(&mut self.partial);
                serde_json::from_str(&line).map(Some).map_err(|e| {
                    Error::new(ErrorOrigin::Connector, ErrorKind::Malformed)
                        .with_reason(format_args!("QMP: {e} in {line:?}"))
                })
            }
            Ok(_) if self.partial.len() as u64 >= QMP_MESSAGE_MAX => {
                Err(Error::new(ErrorOrigin::Connector, ErrorKind::LimitExceeded)
                    .with_reason(format_args!("QMP: a message longer than {QMP_MESSAGE_MAX} bytes (QMP_MESSAGE_MAX)")))
            }
            Ok(_) => {
                Err(Error::new(ErrorOrigin::Connector, ErrorKind::Gone).with_reason("QMP: QEMU closed the connection"))
            }
        }
    }

    /// Reads the next message within [`REPLY_TIMEOUT`].
    fn message(&mut self) -> Result<Value> {
        self.next_message()?.ok_or_else(|| {
            Error::new(ErrorOrigin::Connector, ErrorKind::Io)
                .with_reason(format_args!("QMP: no reply within {} s", REPLY_TIMEOUT.as_secs()))
        })
    }

    /// Keeps an event for [`Qmp::wait_event`], dropping the oldest beyond [`QMP_EVENTS_MAX`].
    fn keep_event(&mut self, event: Value) {
        if self.events.len() == QMP_EVENTS_MAX {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// Runs `command` with optional `arguments` (a JSON object) and returns its `return`
    /// value. An `error` reply gives `Unsupported` (unknown command) or `InvalidArgument`,
    /// with QEMU's description logged.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut text = request.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes()).map_err(|e| {
            Error::new(ErrorOrigin::Connector, ErrorKind::Gone)
                .with_reason(format_args!("QMP: cannot send {command}: {e}"))
        })?;
        for _ in 0..=QMP_EVENTS_MAX {
            let mut reply = self.message()?;
            if let Some(value) = reply.get_mut("return") {
                return Ok(value.take());
            }
            if let Some(error) = reply.get("error") {
                let class = error.get("class").and_then(Value::as_str).unwrap_or("?");
                let kind = if class == "CommandNotFound" { ErrorKind::Unsupported } else { ErrorKind::InvalidArgument };
                let desc = error.get("desc").and_then(Value::as_str).unwrap_or("");
                return Err(Error::new(ErrorOrigin::Connector, kind)
                    .with_reason(format_args!("QMP: {command}: {class}: {desc}")));
            }
            // Anything else is an asynchronous event.
            self.keep_event(reply);
        }
        Err(Error::new(ErrorOrigin::Connector, ErrorKind::LimitExceeded).with_reason(format_args!(
            "QMP: no reply to {command} among more than {QMP_EVENTS_MAX} events (QMP_EVENTS_MAX)"
        )))
    }

    /// Runs the HMP command `command_line` and returns its output.
    pub fn hmp(&mut self, command_line: &str) -> Result<String> {
        match self.execute("human-monitor-command", Some(json!({ "command-line": command_line })))? {
            Value::String(text) => Ok(text),
            other => Err(Error::new(ErrorOrigin::Connector, ErrorKind::Malformed)
                .with_reason(format_args!("QMP: `{command_line}` gave {other} instead of text"))),
        }
    }

    /// Waits up to `timeout` for the event `name` (e.g. `DUMP_COMPLETED`) and returns the
    /// whole message (`event`, `data`, `timestamp`), or `None` if it did not come in time.
    /// An event that arrived earlier, while a command waited for its reply, counts.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<Option<Value>> {
        if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
            return Ok(self.events.remove(i));
        }
        let deadline = Instant::now() + timeout;
        let found = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Ok(None);
            }
            self.reader.get_ref().set_read_timeout(Some(left)).map_err(|e| {
                Error::new(ErrorOrigin::Connector, ErrorKind::Io).with_reason(format_args!("QMP: {}", e))
            })?;
            match self.next_message() {
                Ok(Some(message)) if message["event"] == name => break Ok(Some(message)),
                // A late reply (of a command that failed on a timeout) is no event: dropped.
                Ok(Some(message)) if message.get("event").is_some() => self.keep_event(message),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        self.reader
            .get_ref()
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(|e| Error::new(ErrorOrigin::Connector, ErrorKind::Io).with_reason(format_args!("QMP: {}", e)))?;
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    /// A fake QEMU: greets, then answers each request line with the next canned reply lines.
    fn fake_server(path: &Path, replies: Vec<&'static str>) -> std::thread::JoinHandle<Vec<String>> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut out = stream.try_clone().unwrap();
            out.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n").unwrap();
            let mut reader = BufReader::new(stream);
            let mut requests = Vec::new();
            for reply in replies {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                requests.push(line.trim_end().to_owned());
                out.write_all(reply.as_bytes()).unwrap();
            }
            // Wait for the client to hang up.
            let _ = reader.read_to_end(&mut Vec::new());
            requests
        })
    }

    #[test]
    fn commands_events_and_errors() {
        let dir = std::env::temp_dir().join(format!("mfqmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("qmp.sock");
        let server = fake_server(
            &path,
            vec![
                "{\"return\": {}}\n",
                "{\"event\": \"RESUME\", \"data\": {}}\n{\"return\": \"line 1\\r\\nline \\\"2\\\"\\r\\n\"}\n",
                "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope has not been found\"}}\n",
                "{\"return\": {\"base-memory\": 268435456}}\n",
            ],
        );
        let mut qmp = Qmp::connect(&path).unwrap();
        assert_eq!(qmp.hmp("info registers -a").unwrap(), "line 1\r\nline \"2\"\r\n");
        assert_eq!(qmp.execute("nope", None).unwrap_err().kind, ErrorKind::Unsupported);
        let summary = qmp.execute("query-memory-size-summary", None).unwrap();
        assert_eq!(summary["base-memory"].as_u64(), Some(256 << 20));
        drop(qmp);
        let requests = server.join().unwrap();
        let request = |i: usize| serde_json::from_str::<Value>(&requests[i]).unwrap();
        assert_eq!(request(0), json!({ "execute": "qmp_capabilities" }));
        assert_eq!(
            request(1),
            json!({ "execute": "human-monitor-command", "arguments": { "command-line": "info registers -a" } })
        );
        assert!(Qmp::connect(&dir.join("missing.sock")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A server that floods events or sends an endless line gets an error, not a hang or
    /// unbounded memory.
    #[test]
    fn event_floods_and_endless_messages_are_errors() {
        let dir = std::env::temp_dir().join(format!("mfqmp-flood-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let events: &'static str = "{\"event\": \"RESUME\"}\n".repeat(QMP_EVENTS_MAX + 1).leak();
        let path = dir.join("events.sock");
        let server = fake_server(&path, vec!["{\"return\": {}}\n", events]);
        let mut qmp = Qmp::connect(&path).unwrap();
        assert_eq!(qmp.execute("query-status", None).unwrap_err().kind, ErrorKind::LimitExceeded);
        drop(qmp);
        server.join().unwrap();

        let endless: &'static str = " ".repeat(QMP_MESSAGE_MAX as usize + 10).leak();
        let path = dir.join("endless.sock");
        let server = fake_server(&path, vec!["{\"return\": {}}\n", endless]);
        let mut qmp = Qmp::connect(&path).unwrap();
        assert_eq!(qmp.execute("query-status", None).unwrap_err().kind, ErrorKind::LimitExceeded);
        drop(qmp);
        // The server may fail to write its last bytes to the closed connection.
        let _ = server.join();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Events that come before a reply are kept for `wait_event`; a wait that times out in
    /// the middle of a message keeps its start, and the next wait gets the whole event.
    #[test]
    fn events_are_kept_and_waited_for() {
        let dir = std::env::temp_dir().join(format!("mfqmp-events-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (go_on, gate) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut out = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let mut request = || reader.read_line(&mut String::new()).unwrap();
            out.write_all(b"{\"QMP\": {}}\n").unwrap();
            request();
            out.write_all(b"{\"return\": {}}\n").unwrap();
            request();
            out.write_all(b"{\"event\": \"STOP\"}\n{\"event\": \"DUMP_COMPLETED\", \"data\": {\"result\": {}}}\n")
                .unwrap();
            out.write_all(b"{\"return\": {}}\n{\"event\": \"RES").unwrap();
            gate.recv().unwrap();
            out.write_all(b"UME\"}\n").unwrap();
            request();
        });
        let mut qmp = Qmp::connect(&path).unwrap();
        qmp.execute("dump-guest-memory", Some(json!({ "detach": true }))).unwrap();
        let done = qmp.wait_event("DUMP_COMPLETED", Duration::ZERO).unwrap().unwrap();
        assert_eq!(done["data"], json!({ "result": {} }));
        assert_eq!(qmp.wait_event("DUMP_COMPLETED", Duration::ZERO).unwrap(), None, "an event is returned once");
        // The server holds back the end of the RESUME event until told to go on.
        assert_eq!(qmp.wait_event("RESUME", Duration::from_millis(100)).unwrap(), None);
        go_on.send(()).unwrap();
        assert_eq!(qmp.wait_event("RESUME", REPLY_TIMEOUT).unwrap(), Some(json!({ "event": "RESUME" })));
        assert_eq!(qmp.wait_event("STOP", Duration::ZERO).unwrap(), Some(json!({ "event": "STOP" })));
        drop(qmp);
        server.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
