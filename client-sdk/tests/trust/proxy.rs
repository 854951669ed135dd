//! An on-path attacker between a device and the authority: a plain-HTTP proxy on loopback that forwards every
//! request to the real authority and may rewrite each answer's body before the device sees it.
#![allow(unreachable_pub)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Given the request line's path, the request body and the real answer's body, returns the body to send.
pub type Rewrite = Arc<dyn Fn(&str, &[u8], Vec<u8>) -> Vec<u8> + Send + Sync>;

pub struct Proxy {
    pub url: String,
    /// The paths of the requests seen, in order.
    pub seen: Arc<Mutex<Vec<String>>>,
}

fn read_message(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<String>, Vec<u8>)> {
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        headers.push(line);
    }
    let header = |name: &str| {
        headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body
    } else {
        let n: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; n];
        reader.read_exact(&mut body).ok()?;
        body
    };
    Some((first.trim_end().to_owned(), headers, body))
}

fn handle(client: TcpStream, upstream: &str, rewrite: &Rewrite, seen: &Mutex<Vec<String>>) -> Option<()> {
    let mut reader = BufReader::new(client.try_clone().ok()?);
    let (request_line, _, body) = read_message(&mut reader)?;
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    seen.lock().ok()?.push(path.clone());
    let mut server = TcpStream::connect(upstream).ok()?;
    write!(
        server,
        "{method} {path} HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .ok()?;
    server.write_all(&body).ok()?;
    let mut answer = BufReader::new(server);
    let (status_line, _, answer_body) = read_message(&mut answer)?;
    let status = status_line.split_once(' ').map_or("502 Bad Gateway", |(_, s)| s).to_owned();
    let out = rewrite(&path, &body, answer_body);
    let mut client = client;
    write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        out.len()
    )
    .ok()?;
    client.write_all(&out).ok()?;
    Some(())
}

/// Starts the proxy in front of `upstream_url` (`http://host:port`).
pub fn start(upstream_url: &str, rewrite: Rewrite) -> Proxy {
    let upstream = upstream_url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let (upstream, rewrite, log) = (upstream.clone(), Arc::clone(&rewrite), Arc::clone(&log));
            std::thread::spawn(move || handle(client, &upstream, &rewrite, &log));
        }
    });
    Proxy { url, seen }
}
