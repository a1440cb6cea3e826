//! `fovea serve` through the real binary, with a plain HTTP/1.1 client on loopback: its answers
//! agree with `fovea predict`, every limit has its status and the server keeps serving after it,
//! a full queue is refused, and SIGTERM answers what was accepted before the process exits 0.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{on_sample, run, text, train};

/// A trained cnn run on the sample, in `d/artifacts/c`, and one of its test images as a PNG.
fn trained(d: &Path) -> Vec<u8> {
    let setup = on_sample(
        "cnn.toml",
        &[
            "train.epochs=1",
            "data.train_limit=200",
            "model.blocks=[{ channels = 4 }, { channels = 8 }]",
            "model.hidden=[8]",
        ],
    );
    let out = train(d, "c", &setup);
    assert!(out.status.success(), "{}", text(&out));
    pattern(0)
}

/// A 28 × 28 PNG of stripes, different for each `i`.
fn pattern(i: u32) -> Vec<u8> {
    let mut img = image::GrayImage::new(28, 28);
    for (x, y, p) in img.enumerate_pixels_mut() {
        *p = image::Luma([((x * (7 + i) + y * 3) % 256) as u8]);
    }
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

/// A served answer (`{"top": [{"class", "probability"}, …]}`) is `fovea predict --json`'s for
/// one image (`{"top": [[class, probability], …]}`): the same classes in the same order, the
/// same probabilities.
fn assert_same_answer(served: &serde_json::Value, predicted: &serde_json::Value) {
    let (top, want) = (
        served["top"].as_array().unwrap(),
        predicted["top"].as_array().unwrap(),
    );
    assert!(top.len() <= want.len(), "{served} {predicted}");
    for (s, p) in top.iter().zip(want) {
        assert_eq!(s["class"], p[0], "{served} {predicted}");
        let (a, b) = (s["probability"].as_f64().unwrap(), p[1].as_f64().unwrap());
        assert!((a - b).abs() < 1e-6, "{a} {b}: {served} {predicted}");
    }
}

/// `fovea serve` on a free port, and the address it printed.
struct Server {
    child: Option<Child>,
    address: String,
}

impl Server {
    fn start(d: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fovea"))
            .current_dir(d)
            .args(["serve", "artifacts/c", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let address = first
            .rsplit("http://")
            .next()
            .map(|a| a.trim().to_string())
            .filter(|_| first.contains("http://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        Server {
            child: Some(child),
            address,
        }
    }

    /// SIGTERM, and the exit status and output once it has stopped.
    fn stop(mut self) -> (Option<i32>, String) {
        let child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let out = child.wait_with_output().unwrap();
        (out.status.code(), text(&out))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One request on its own connection: the status and the body.
fn http(address: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    request(address, method, path, "", body)
}

/// One request with extra header lines (each ending in CRLF).
fn request(address: &str, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(address).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    response(s)
}

/// `POST path` with a multipart form of one field, `name`, holding `bytes` (with a file name
/// when `file` is given), as `curl -F name=@file` sends it.
fn form(address: &str, path: &str, name: &str, file: Option<&str>, bytes: &[u8]) -> (u16, String) {
    let boundary = "fovea-test-boundary";
    let filename = file
        .map(|f| format!("; filename=\"{f}\""))
        .unwrap_or_default();
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let headers = format!("Content-Type: multipart/form-data; boundary={boundary}\r\n");
    request(address, "POST", path, &headers, &body)
}

/// A client that sends its headers and then too little of its body: the answer.
fn slow_body(address: &str) -> (u16, String) {
    let mut s = TcpStream::connect(address).unwrap();
    write!(
        s,
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\nab"
    )
    .unwrap();
    response(s)
}

/// A client that trickles its headers and never ends them, waiting up to 20 s for the server:
/// how its wait ended, after how long, and what the server said.
fn slow_headers(address: &str) -> (std::io::Result<usize>, Duration, Vec<u8>) {
    let mut s = TcpStream::connect(address).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = std::time::Instant::now();
    write!(s, "POST /predict HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut said = Vec::new();
    let ended = s.read_to_end(&mut said);
    (ended, started.elapsed(), said)
}

fn response(mut s: TcpStream) -> (u16, String) {
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let status = all
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {all:?}"));
    let body = all.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn a_served_cnn_answers_as_predict_does_and_counts_its_requests() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let png = trained(d);
    std::fs::write(d.join("x.png"), &png).unwrap();
    let out = run(d, &["predict", "artifacts/c", "x.png", "-k", "2", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let predicted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let server = Server::start(d, &[]);
    assert_eq!(
        http(&server.address, "GET", "/health", b""),
        (200, "ok\n".into())
    );
    let (status, body) = http(&server.address, "POST", "/predict?k=2", &png);
    assert_eq!(status, 200, "{body}");
    // the same image in a form's file field, after another field, gets the same answer
    let (status, from_form) = form(
        &server.address,
        "/predict?k=2",
        "upload",
        Some("x.png"),
        &png,
    );
    assert_eq!((status, &from_form), (200, &body));
    let served: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(served["top"].as_array().unwrap().len(), 2, "{served}");
    assert_same_answer(&served, &predicted[0]);
    let (status, metrics) = http(&server.address, "GET", "/metrics", b"");
    assert_eq!(status, 200);
    for line in [
        "fovea_requests_total 2\n",
        "fovea_responses_total{status=\"200\"} 2\n",
        "fovea_batch_size_bucket{le=\"1\"} 2\n",
        "fovea_request_seconds_count 2\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    let (code, said) = server.stop();
    assert_eq!(code, Some(0), "{said}");
}

#[test]
fn every_limit_has_its_answer_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let png = trained(d);
    let server = Server::start(
        d,
        &[
            "--max-body",
            "4000",
            "--max-pixels",
            "10000",
            "--read-timeout",
            "1",
        ],
    );
    let a = server.address.as_str();
    let large = image::GrayImage::from_pixel(101, 100, image::Luma([9]));
    let mut large_png = Vec::new();
    large
        .write_to(
            &mut std::io::Cursor::new(&mut large_png),
            image::ImageFormat::Png,
        )
        .unwrap();
    assert!(large_png.len() < 4000, "{}", large_png.len());
    let cases: [(&str, &[u8], u16, &str); 7] = [
        ("/predict", &[7u8; 5000], 413, "larger than 4000 bytes"),
        ("/predict", &large_png, 413, "101×100"),
        ("/predict", b"hello, not an image", 415, "not an image"),
        ("/predict", &png[..60], 400, "image"),
        ("/predict", b"", 400, "empty"),
        ("/predict?k=0", &png, 400, "k must be"),
        ("/predict?k=many", &png, 400, "query"),
    ];
    for (path, body, want, says) in cases {
        let (status, answer) = http(a, "POST", path, body);
        assert_eq!(status, want, "{path}: {answer}");
        assert!(answer.contains(says), "{path}: {answer}");
        // still serving
        assert_eq!(http(a, "POST", "/predict", &png).0, 200, "after {path}");
    }
    // a form without a file field; a form whose boundary never comes
    let (status, answer) = form(a, "/predict", "caption", None, b"a boot");
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("no file field"), "{answer}");
    let (status, answer) = request(
        a,
        "POST",
        "/predict",
        "Content-Type: multipart/form-data; boundary=zz\r\n",
        &png,
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("the form"), "{answer}");
    assert_eq!(http(a, "POST", "/predict", &png).0, 200, "after the forms");
    let (status, answer) = slow_body(a);
    assert_eq!(status, 408, "{answer}");
    assert_eq!(http(a, "POST", "/predict", &png).0, 200);
    // its connection is closed after the read timeout (1 s here), long before the client's 20 s
    let (ended, after, said) = slow_headers(a);
    assert!(
        ended.is_ok() && after < Duration::from_secs(10),
        "{ended:?} after {after:?}: {}",
        String::from_utf8_lossy(&said)
    );
    assert_eq!(http(a, "POST", "/predict", &png).0, 200);
    let (_, metrics) = http(a, "GET", "/metrics", b"");
    assert!(metrics.contains("fovea_errors_total 10\n"), "{metrics}");
    let (code, said) = server.stop();
    assert_eq!(code, Some(0), "{said}");
}

#[test]
fn a_full_queue_is_refused_and_sigterm_answers_what_was_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let png = trained(d);
    // one image a batch, each held 1.5 s; one more may wait
    let server = Server::start(
        d,
        &["--queue", "1", "--max-batch", "1", "--hold-ms", "1500"],
    );
    let send = |png: Vec<u8>, address: String| {
        std::thread::spawn(move || http(&address, "POST", "/predict", &png))
    };
    let first = send(png.clone(), server.address.clone()); // taken by the model's thread
    std::thread::sleep(Duration::from_millis(500));
    let second = send(png.clone(), server.address.clone()); // waits in the queue
    std::thread::sleep(Duration::from_millis(300));
    let (status, answer) = http(&server.address, "POST", "/predict", &png);
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("queue is full"), "{answer}");
    // stopped while two are accepted: both are answered, then it exits 0
    let (code, said) = server.stop();
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(first.join().unwrap().0, 200);
    assert_eq!(second.join().unwrap().0, 200);
}

#[test]
fn a_spiking_model_that_draws_its_spikes_answers_an_image_alike_in_any_batch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let setup = on_sample(
        "cnn-lif.toml",
        &[
            "train.epochs=1",
            "data.train_limit=64",
            "model.blocks=[{ channels = 4 }, { channels = 8 }]",
            "model.coding=\"poisson\"",
            "model.steps=4",
        ],
    );
    let out = train(d, "c", &setup);
    assert!(out.status.success(), "{}", text(&out));
    let pngs: Vec<Vec<u8>> = (0..4).map(pattern).collect();
    std::fs::write(d.join("x.png"), &pngs[0]).unwrap();
    let out = run(
        d,
        &["predict", "artifacts/c", "x.png", "-k", "10", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let alone: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // the first request holds the model's thread; the next four arrive meanwhile and are
    // taken as one batch
    let server = Server::start(
        d,
        &[
            "--hold-ms",
            "600",
            "--max-wait-ms",
            "300",
            "--max-batch",
            "8",
        ],
    );
    let send = |png: Vec<u8>, address: String| {
        std::thread::spawn(move || http(&address, "POST", "/predict?k=10", &png))
    };
    let blocker = send(pngs[1].clone(), server.address.clone());
    std::thread::sleep(Duration::from_millis(200));
    let together: Vec<_> = pngs
        .iter()
        .map(|png| send(png.clone(), server.address.clone()))
        .collect();
    let answers: Vec<(u16, String)> = together.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(blocker.join().unwrap().0, 200);
    let (_, metrics) = http(&server.address, "GET", "/metrics", b"");
    assert!(
        metrics.contains("fovea_batch_size_bucket{le=\"2\"} 1\n")
            && metrics.contains("fovea_batch_size_count 2\n"),
        "the four were not one batch: {metrics}"
    );
    let (status, body) = &answers[0];
    assert_eq!(*status, 200, "{body}");
    let served: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_same_answer(&served, &alone[0]);
    let (code, said) = server.stop();
    assert_eq!(code, Some(0), "{said}");
}

#[test]
fn bad_requests_mixed_with_good_ones_leave_every_good_one_answered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let png = trained(d);
    let server = Server::start(
        d,
        &[
            "--max-body",
            "4000",
            "--read-timeout",
            "1",
            "--max-batch",
            "4",
        ],
    );
    let (status, expected) = http(&server.address, "POST", "/predict", &png);
    assert_eq!(status, 200, "{expected}");
    let mut corrupt = png.clone();
    corrupt.truncate(png.len() / 2);
    let mut bad = Vec::new();
    for _ in 0..3 {
        for kind in 0..5 {
            let (a, corrupt) = (server.address.clone(), corrupt.clone());
            bad.push(std::thread::spawn(move || match kind {
                0 => http(&a, "POST", "/predict", &[7u8; 6000]).0,
                1 => http(&a, "POST", "/predict", &corrupt).0,
                2 => http(&a, "POST", "/predict", b"{\"not\": \"an image\"}").0,
                3 => slow_body(&a).0,
                _ => {
                    slow_headers(&a);
                    0
                }
            }));
        }
    }
    let good: Vec<_> = (0..4)
        .map(|_| {
            let (a, png) = (server.address.clone(), png.clone());
            std::thread::spawn(move || {
                (0..15)
                    .map(|_| http(&a, "POST", "/predict", &png))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for answers in good {
        for (status, body) in answers.join().unwrap() {
            assert_eq!((status, &body), (200, &expected));
        }
    }
    let refused: Vec<u16> = bad.into_iter().map(|t| t.join().unwrap()).collect();
    for (i, status) in refused.iter().enumerate() {
        let want = [413, 400, 415, 408, 0][i % 5];
        assert_eq!(*status, want, "bad request {i}: {refused:?}");
    }
    assert_eq!(http(&server.address, "GET", "/health", b"").0, 200);
    let (code, said) = server.stop();
    assert_eq!(code, Some(0), "{said}");
}
