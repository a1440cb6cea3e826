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
    let mut img = image::GrayImage::new(28, 28);
    for (x, y, p) in img.enumerate_pixels_mut() {
        *p = image::Luma([((x * 7 + y * 3) % 256) as u8]);
    }
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
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
    let mut s = TcpStream::connect(address).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    response(s)
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
    let served: serde_json::Value = serde_json::from_str(&body).unwrap();
    let top = served["top"].as_array().unwrap();
    assert_eq!(top.len(), 2, "{served}");
    for (s, p) in top.iter().zip(predicted[0]["top"].as_array().unwrap()) {
        assert_eq!(s["class"], p[0], "{served} {predicted}");
        let (a, b) = (s["probability"].as_f64().unwrap(), p[1].as_f64().unwrap());
        assert!((a - b).abs() < 1e-6, "{a} {b}");
    }
    let (status, metrics) = http(&server.address, "GET", "/metrics", b"");
    assert_eq!(status, 200);
    for line in [
        "fovea_requests_total 1\n",
        "fovea_responses_total{status=\"200\"} 1\n",
        "fovea_batch_size_bucket{le=\"1\"} 1\n",
        "fovea_request_seconds_count 1\n",
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
    // a client that sends its headers and then too little of its body
    let mut slow = TcpStream::connect(a).unwrap();
    write!(
        slow,
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\nab"
    )
    .unwrap();
    let (status, answer) = response(slow);
    assert_eq!(status, 408, "{answer}");
    assert_eq!(http(a, "POST", "/predict", &png).0, 200);
    let (_, metrics) = http(a, "GET", "/metrics", b"");
    assert!(metrics.contains("fovea_errors_total 8\n"), "{metrics}");
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
