//! A small hostile HTTP server on 127.0.0.1 for the client's tests: per command it answers
//! what the test scripts (garbage, wrong statuses, cut or hanging connections), and forwards
//! everything else to an upstream emulator, so whole runs of the binary can go through it.
//! It records every request's command and usersig, so tests can search outputs for the sig.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one request.
#[derive(Clone, Debug)]
pub enum Act {
    /// Pass it to the upstream emulator and relay its answer.
    Forward,
    /// Answer with this status, extra headers and body.
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Forward it (the write happens upstream), then send half the answer and close.
    ForwardThenCut,
    /// Close the connection without answering.
    Close,
    /// Reset the connection (RST) without answering.
    Reset,
    /// Never answer.
    Hang,
    /// Send the headers at once, then the body one byte per `Duration`.
    Drip(Vec<u8>, Duration),
    /// Write these bytes as the whole answer (status line included), then close.
    Raw(Vec<u8>),
}

impl Act {
    /// HTTP 200 with this body.
    pub fn ok(body: &str) -> Act {
        Act::status(200, body)
    }

    pub fn status(status: u16, body: &str) -> Act {
        Act::Answer {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn with_header(status: u16, name: &str, value: &str) -> Act {
        Act::Answer {
            status,
            headers: vec![(name.to_owned(), value.to_owned())],
            body: b"busy".to_vec(),
        }
    }
}

/// Decides per request: the command and how many requests for it came before (0-based).
pub type Script = Arc<dyn Fn(&str, usize) -> Act + Send + Sync>;

#[derive(Default)]
struct Seen {
    per_command: HashMap<String, usize>,
    sigs: Vec<String>,
    commands: Vec<String>,
}

struct Shared {
    upstream: Option<String>,
    script: Mutex<Script>,
    seen: Mutex<Seen>,
    http: reqwest::Client,
}

/// A running hostile server (served by the runtime it was started on).
#[derive(Clone)]
pub struct Hostile {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Hostile {
    /// Listens on a free loopback port. `upstream` is `http://IP:PORT` of an emulator.
    pub async fn start(upstream: Option<String>, script: Script) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            script: Mutex::new(script),
            seen: Mutex::new(Seen::default()),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        });
        let s = shared.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, s.clone()));
            }
        });
        Hostile { addr, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`, as errors name the host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn set_script(&self, script: Script) {
        *self.shared.script.lock().unwrap() = script;
    }

    /// Every usersig the server was sent (URL-decoded).
    pub fn sigs(&self) -> Vec<String> {
        self.shared.seen.lock().unwrap().sigs.clone()
    }

    /// The commands requested, in arrival order.
    pub fn commands(&self) -> Vec<String> {
        self.shared.seen.lock().unwrap().commands.clone()
    }

    pub fn count(&self, cmd: &str) -> usize {
        self.commands().iter().filter(|c| *c == cmd).count()
    }
}

/// A script that answers `cmd` with `act` and forwards every other command.
pub fn only(cmd: &'static str, act: Act) -> Script {
    Arc::new(move |c: &str, _| if c == cmd { act.clone() } else { Act::Forward })
}

/// A script that answers the first `acts.len()` requests of `cmd` with `acts`, then forwards.
pub fn first(cmd: &'static str, acts: Vec<Act>) -> Script {
    Arc::new(move |c: &str, n| match acts.get(n) {
        Some(act) if c == cmd => act.clone(),
        _ => Act::Forward,
    })
}

async fn serve(mut sock: TcpStream, s: Arc<Shared>) {
    let Some((target, body)) = read_request(&mut sock).await else {
        return;
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let cmd = path.rsplit('/').next().unwrap_or("").to_owned();
    let n = {
        let mut seen = s.seen.lock().unwrap();
        seen.commands.push(cmd.clone());
        let url = reqwest::Url::parse(&format!("http://x/?{query}")).ok();
        if let Some(sig) = url.as_ref().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "usersig")
                .map(|(_, v)| v.into_owned())
        }) {
            seen.sigs.push(sig);
        }
        let n = seen.per_command.entry(cmd.clone()).or_default();
        *n += 1;
        *n - 1
    };
    let act = (s.script.lock().unwrap().clone())(&cmd, n);
    match act {
        Act::Forward => {
            let (status, answer) = forward(&s, &target, body).await;
            respond(&mut sock, status, &[], &answer).await;
        }
        Act::Answer {
            status,
            headers,
            body,
        } => respond(&mut sock, status, &headers, &body).await,
        Act::ForwardThenCut => {
            let (_, answer) = forward(&s, &target, body).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                answer.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(&answer[..answer.len() / 2]).await;
            let _ = sock.flush().await;
        }
        Act::Raw(bytes) => {
            let _ = sock.write_all(&bytes).await;
            let _ = sock.flush().await;
            let _ = sock.shutdown().await;
        }
        Act::Close => {}
        Act::Reset => {
            let _ = sock.set_zero_linger();
        }
        Act::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
        Act::Drip(body, every) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            for b in body {
                tokio::time::sleep(every).await;
                if sock.write_all(&[b]).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn forward(s: &Shared, target: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let Some(up) = &s.upstream else {
        return (502, b"no upstream".to_vec());
    };
    match s
        .http
        .post(format!("{up}{target}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.bytes().await.unwrap_or_default().to_vec())
        }
        Err(_) => (502, b"upstream failed".to_vec()),
    }
}

async fn respond(sock: &mut TcpStream, status: u16, headers: &[(String, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(body).await;
    let _ = sock.flush().await;
    let _ = sock.shutdown().await;
}

/// Reads one request: its target (`/path?query`) and body.
async fn read_request(sock: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < end + 4 + len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let target = head.split(' ').nth(1)?.to_owned();
    Some((target, buf[end + 4..end + 4 + len].to_vec()))
}
