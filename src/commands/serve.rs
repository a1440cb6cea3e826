//! `fovea serve`: a run's classifier behind HTTP. `POST /predict` takes an image (the request's
//! body, or a multipart form's file field) and answers its top classes as JSON; `GET /health`;
//! `GET /metrics` in Prometheus' text format. Requests that arrive together are classified
//! together: one thread owns the model and takes from a bounded queue up to `max_batch` images,
//! waiting at most `max_wait` after the first for others on their way. Every limit has its
//! answer: a body too large (413), too many pixels (413), a format that is not an image's (415),
//! an image that does not decode (400), a body that arrives too slowly (408), a full queue
//! (503); headers that arrive too slowly close the connection. SIGTERM or Ctrl-C: stop
//! accepting, answer what was accepted, exit 0.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::predict::Reader;
use super::runs::load_run;
use crate::data::InputShape;
use crate::device::BackendKind;

/// `fovea serve`'s settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    pub checkpoint: String,
    pub backend: Option<BackendKind>,
    /// Spiking models: each decision read at the first step where the top two probabilities
    /// differ by this much.
    pub exit_margin: Option<f64>,
    /// The most images classified together.
    pub max_batch: usize,
    /// How long the first image of a batch waits for others.
    pub max_wait: Duration,
    /// Images accepted but not yet classified, at most; beyond it, 503.
    pub queue: usize,
    /// The largest request body, in bytes.
    pub max_body: usize,
    /// The most pixels (width × height) an image may have.
    pub max_pixels: u64,
    /// How long a request's headers, and then its body, may each take to arrive.
    pub read_timeout: Duration,
    /// Test hook: how long each batch is held before it is classified.
    pub hold: Option<Duration>,
}

/// One accepted image, waiting for its batch.
struct Job {
    pixels: Vec<u8>,
    k: usize,
    reply: oneshot::Sender<Result<Answer, String>>,
}

#[derive(Serialize)]
struct Answer {
    top: Vec<Ranked>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decided_at_step: Option<usize>,
}

#[derive(Serialize)]
struct Ranked {
    class: String,
    probability: f32,
}

/// What every request handler shares. The model's thread has the metrics, never the queue's
/// sender: the queue closes when the last handler is gone.
struct Shared {
    queue: SyncSender<Job>,
    shape: InputShape,
    classes: usize,
    options: ServeOptions,
    metrics: Arc<Metrics>,
}

/// Serves `run` until SIGTERM or Ctrl-C; prints the address it listens on first.
pub fn serve(run: &Path, options: ServeOptions) -> Result<()> {
    anyhow::ensure!(options.max_batch >= 1, "--max-batch must be at least 1");
    anyhow::ensure!(options.queue >= 1, "--queue must be at least 1");
    let loaded = load_run(run, &options.checkpoint, options.backend)?;
    let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(options.queue);
    let shared = Arc::new(Shared {
        queue,
        shape: loaded.meta.shape,
        classes: loaded.meta.classes.len(),
        options: options.clone(),
        metrics: Arc::new(Metrics::default()),
    });
    // The model's thread; its reader (and so --exit-margin) is checked before anything listens.
    let (ready, started) = std::sync::mpsc::channel();
    let batcher = {
        let (metrics, o) = (shared.metrics.clone(), options.clone());
        std::thread::spawn(move || match Reader::new(&loaded, o.exit_margin) {
            Ok(reader) => {
                let _ = ready.send(Ok(()));
                batch_loop(&reader, &loaded.meta.classes, jobs, &o, &metrics);
            }
            Err(e) => {
                let _ = ready.send(Err(e));
            }
        })
    };
    started
        .recv()
        .map_err(|_| anyhow::anyhow!("the model's thread ended before it started"))??;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind((
            options.host.as_str(),
            options.port,
        )))
        .with_context(|| format!("cannot listen on {}:{}", options.host, options.port))?;
    let address: SocketAddr = listener.local_addr()?;
    println!(
        "serving {} ({} classes, {}) on http://{address}",
        run.display(),
        shared.classes,
        shared.shape
    );
    println!(
        "  POST /predict[?k=3] with an image as the body or a form's file; GET /health; GET /metrics"
    );
    let app = Router::new()
        .route("/predict", post(predict))
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        // a form is parsed from a body already read within --max-body
        .layer(DefaultBodyLimit::max(shared.options.max_body))
        .with_state(shared.clone());
    runtime.block_on(connections(
        listener,
        app,
        shared.options.read_timeout,
        stop_signal(),
    ));
    // Every accepted request has been answered. With the runtime's tasks and `shared` gone, the
    // queue's last sender is, and the model's thread ends.
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(shared);
    batcher
        .join()
        .map_err(|_| anyhow::anyhow!("the batcher thread panicked"))?;
    println!("stopped");
    Ok(())
}

/// Accepts connections and serves each (HTTP/1.1) until `stop`: then accepts no more, lets
/// each connection finish the request it is answering, and returns once all have closed. A
/// client must send a request's headers within `header_timeout` (hyper's header read timeout),
/// or its connection is closed: a client that trickles its headers holds nothing for long.
async fn connections(
    listener: tokio::net::TcpListener,
    app: Router,
    header_timeout: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let (closing, closed) = tokio::sync::watch::channel(false);
    let mut open = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // a connection reset before it was accepted, or out of file descriptors:
                // the listener stays; wait a moment and go on accepting
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut closed = closed.clone();
        open.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = closed.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        // forget connections already closed
        while open.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = closing.send(true);
    while open.join_next().await.is_some() {}
}

/// SIGTERM or Ctrl-C.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    eprintln!("stopping: answering what was accepted");
}

/// The model's thread: takes a batch from the queue (the first job, then others until the batch
/// is full or `max_wait` has passed), classifies it and answers each job.
fn batch_loop(
    reader: &Reader,
    classes: &[String],
    jobs: Receiver<Job>,
    o: &ServeOptions,
    metrics: &Metrics,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + o.max_wait;
        while batch.len() < o.max_batch {
            // Wait for more only while other requests are on their way (arrived, their images
            // still being read or decoded): a request alone is not held for company.
            let coming = metrics.in_flight.load(Ordering::Relaxed) > batch.len();
            let left = deadline.saturating_duration_since(Instant::now());
            let next = if coming {
                jobs.recv_timeout(left).ok()
            } else {
                jobs.try_recv().ok()
            };
            match next {
                Some(j) => batch.push(j),
                None => break,
            }
        }
        metrics.batch_sizes.observe(batch.len() as f64);
        if let Some(h) = o.hold {
            std::thread::sleep(h);
        }
        let decisions = if reader.draws() {
            // random spikes: each image read alone, with the run's seed
            batch
                .iter()
                .map(|j| {
                    reader
                        .classify(j.pixels.clone(), 1)
                        .map(|mut d| d.remove(0))
                })
                .collect()
        } else {
            let pixels: Vec<u8> = batch
                .iter()
                .flat_map(|j| j.pixels.iter().copied())
                .collect();
            reader.classify(pixels, o.max_batch)
        };
        match decisions {
            Ok(decisions) => {
                for (job, d) in batch.into_iter().zip(decisions) {
                    let top = d
                        .top(classes, job.k)
                        .into_iter()
                        .map(|(class, probability)| Ranked { class, probability })
                        .collect();
                    let answer = Answer {
                        top,
                        decided_at_step: d.step,
                    };
                    // a client that has gone needs no answer
                    let _ = job.reply.send(Ok(answer));
                }
            }
            Err(e) => {
                for job in batch {
                    let _ = job.reply.send(Err(format!("{e:#}")));
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct PredictQuery {
    k: Option<usize>,
}

async fn predict(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let start = Instant::now();
    let m = &shared.metrics;
    let response = {
        let _counted = InFlight::enter(m);
        answer(&shared, request).await
    };
    m.requests.fetch_add(1, Ordering::Relaxed);
    m.count_status(response.status().as_u16());
    m.latency.observe(start.elapsed().as_secs_f64());
    response
}

/// One request counted in `in_flight` for as long as it lives, even when its client leaves and
/// its handler is dropped mid-way.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn enter(m: &'a Metrics) -> Self {
        m.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(m)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A refused request: its status and what to say.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Error {
        error: String,
    }
    (
        status,
        axum::Json(Error {
            error: message.into(),
        }),
    )
        .into_response()
}

async fn answer(shared: &Shared, request: Request) -> Response {
    let o = &shared.options;
    let (parts, body) = request.into_parts();
    let k = match Query::<PredictQuery>::try_from_uri(&parts.uri) {
        Ok(Query(q)) => q.k.unwrap_or(3),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("query: {e}")),
    };
    if k == 0 || k > shared.classes {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("k must be in 1..={} (got {k})", shared.classes),
        );
    }
    let read = axum::body::to_bytes(body, o.max_body);
    let bytes = match tokio::time::timeout(o.read_timeout, read).await {
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {:?}", o.read_timeout),
            );
        }
        Ok(Err(_)) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {} bytes", o.max_body),
            );
        }
        Ok(Ok(b)) => b,
    };
    let bytes = if is_form(&parts.headers) {
        match form_file(Request::from_parts(parts, Body::from(bytes))).await {
            Ok(b) => b,
            Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
        }
    } else {
        bytes
    };
    let pixels = match decode(&bytes, shared.shape, o.max_pixels) {
        Ok(p) => p,
        Err((status, message)) => return refuse(status, message),
    };
    let (reply, answered) = oneshot::channel();
    match shared.queue.try_send(Job { pixels, k, reply }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the queue is full ({} images); try again", o.queue),
            );
        }
        Err(TrySendError::Disconnected(_)) => {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
        }
    }
    match answered.await {
        Ok(Ok(a)) => axum::Json(a).into_response(),
        Ok(Err(e)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(_) => refuse(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping"),
    }
}

/// Whether the request's body is a multipart form (`curl -F image=@photo.png`).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("multipart/form-data"))
}

/// The image of a multipart form, whose body has been read already: its first file field
/// (a part with a file name), or a field named `image` or `file`.
async fn form_file(request: Request) -> Result<Bytes, String> {
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| format!("the form: {}", e.body_text()))?;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| format!("the form: {}", e.body_text()))?
    {
        if field.file_name().is_some() || matches!(field.name(), Some("image" | "file")) {
            let name = field.name().unwrap_or("").to_string();
            return field
                .bytes()
                .await
                .map_err(|e| format!("the form's field `{name}`: {}", e.body_text()));
        }
    }
    Err("the form has no file field: send the image as one (curl -F image=@photo.png)".into())
}

/// The image in `bytes`, converted to the model's shape; or why not, with its status. The size is
/// read from the header and checked before any pixel is decoded.
fn decode(
    bytes: &[u8],
    shape: InputShape,
    max_pixels: u64,
) -> Result<Vec<u8>, (StatusCode, String)> {
    if bytes.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "the body is empty: send an image".into(),
        ));
    }
    let format = image::guess_format(bytes).map_err(|_| {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body is not an image of a known format (PNG, JPEG, BMP, GIF, TIFF, WebP, PNM)"
                .to_string(),
        )
    })?;
    let reader = || image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let (w, h) = reader().into_dimensions().map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("cannot read the image: {e}"),
        )
    })?;
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the image is {w}×{h}, more than {max_pixels} pixels"),
        ));
    }
    let image = reader().decode().map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("cannot decode the image: {e}"),
        )
    })?;
    Ok(crate::data::folder::to_shape(image, shape))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.text(),
    )
        .into_response()
}

/// The server's counters, in Prometheus' text format.
struct Metrics {
    requests: AtomicU64,
    /// Requests to /predict arrived and not yet answered.
    in_flight: AtomicUsize,
    by_status: Mutex<std::collections::BTreeMap<u16, u64>>,
    latency: Histogram,
    batch_sizes: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            by_status: Mutex::default(),
            latency: Histogram::new(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            batch_sizes: Histogram::new(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        }
    }
}

impl Metrics {
    fn count_status(&self, status: u16) {
        let mut by = self.by_status.lock().unwrap_or_else(|p| p.into_inner());
        *by.entry(status).or_default() += 1;
    }

    fn text(&self) -> String {
        let mut t = String::new();
        let requests = self.requests.load(Ordering::Relaxed);
        t += "# HELP fovea_requests_total Requests to /predict.\n";
        t += "# TYPE fovea_requests_total counter\n";
        t += &format!("fovea_requests_total {requests}\n");
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        t += "# HELP fovea_in_flight Requests to /predict arrived and not yet answered.\n";
        t += "# TYPE fovea_in_flight gauge\n";
        t += &format!("fovea_in_flight {in_flight}\n");
        let by = self.by_status.lock().unwrap_or_else(|p| p.into_inner());
        t += "# HELP fovea_responses_total Answers to /predict by status.\n";
        t += "# TYPE fovea_responses_total counter\n";
        for (status, n) in by.iter() {
            t += &format!("fovea_responses_total{{status=\"{status}\"}} {n}\n");
        }
        let errors: u64 = by.iter().filter(|(s, _)| **s >= 400).map(|(_, n)| n).sum();
        t += "# HELP fovea_errors_total Answers to /predict with a 4xx or 5xx status.\n";
        t += "# TYPE fovea_errors_total counter\n";
        t += &format!("fovea_errors_total {errors}\n");
        self.latency.write(
            &mut t,
            "fovea_request_seconds",
            "Time from a request's arrival to its answer.",
        );
        self.batch_sizes
            .write(&mut t, "fovea_batch_size", "Images classified together.");
        t
    }
}

/// A histogram over fixed upper bounds (and +Inf), counted with atomics.
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    /// The sum of observations, in millionths.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((v * 1e6).round() as u64, Ordering::Relaxed);
    }

    fn write(&self, t: &mut String, name: &str, help: &str) {
        *t += &format!("# HELP {name} {help}\n# TYPE {name} histogram\n");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            *t += &format!("{name}_bucket{{le=\"{b}\"}} {cumulative}\n");
        }
        let count = self.count.load(Ordering::Relaxed);
        *t += &format!("{name}_bucket{{le=\"+Inf\"}} {count}\n");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        *t += &format!("{name}_sum {sum}\n{name}_count {count}\n");
    }
}
