//! The service over real HTTP on an ephemeral loopback port: answers, 400s, 503s and a clean
//! shutdown, for every backend.

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokengate_demos::service::work::{self, HeavyInput, HeavyOutput, LightInput, LightOutput};
use tokengate_demos::service::{self, Backend, BackendConfig, BackendKind, Service};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Long enough (about a second) for a request to be surely in flight when the next one
/// arrives 50 ms later.
const SLOW: HeavyInput = HeavyInput {
    from: 1_000_000_000_000,
    count: 6_000,
};

struct Server {
    base: String,
    service: Arc<Service>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

async fn start(kind: BackendKind, capacity: usize, max_heavy: usize) -> Server {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = BackendConfig::new(kind);
    config.cores = 2;
    config.capacity = capacity;
    let service = Service::new(Backend::new(&config).unwrap(), max_heavy);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(service::serve(listener, service.clone(), async {
        let _ = stopped.await;
    }));
    let client = Client::builder(TokioExecutor::new()).build_http();
    Server {
        base,
        service,
        stop: Some(stop),
        task,
        client,
    }
}

impl Server {
    async fn send(&self, method: Method, path: &str, body: &str) -> (StatusCode, String) {
        send(&self.client, &self.base, method, path, body).await
    }

    async fn light(&self, msg: &str) -> (StatusCode, String) {
        self.send(Method::GET, &format!("/light?msg={msg}"), "")
            .await
    }

    async fn heavy(&self, body: &str) -> (StatusCode, String) {
        self.send(Method::POST, "/heavy", body).await
    }

    /// Stops the server and checks that it returns cleanly, promptly.
    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server did not stop within 10 s");
        result.unwrap().unwrap();
    }
}

async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    base: &str,
    method: Method,
    path: &str,
    body: &str,
) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let exchange = async {
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("no answer within 20 s")
}

fn json<T: serde::de::DeserializeOwned>(body: &str) -> T {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn error_message(body: &str) -> String {
    let v: serde_json::Value = json(body);
    v["error"].as_str().expect("an error message").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke() {
    let server = start(BackendKind::Tokengate, 1024, 256).await;
    let (status, body) = server.send(Method::GET, "/healthz", "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let (status, body) = server.light("hello").await;
    assert_eq!(status, StatusCode::OK);
    let expected = work::light(&LightInput {
        msg: "hello".into(),
    });
    assert_eq!(json::<LightOutput>(&body), expected);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_answers_both_endpoints() {
    for kind in BackendKind::ALL {
        let server = start(kind, 1024, 256).await;
        let (status, body) = server.light("token-gate").await;
        assert_eq!(status, StatusCode::OK, "{kind}: {body}");
        assert_eq!(
            json::<LightOutput>(&body),
            work::light(&LightInput {
                msg: "token-gate".into()
            }),
            "{kind}"
        );
        let (status, body) = server.heavy(r#"{"from": 1000000, "count": 100}"#).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {body}");
        let out: HeavyOutput = json(&body);
        assert_eq!((out.primes, out.largest), (6, Some(1_000_099)), "{kind}");
        // Many at once, mixed: all answered, all right.
        let mut calls = Vec::new();
        for i in 0..20u64 {
            let (client, base) = (server.client.clone(), server.base.clone());
            calls.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    let body = format!(r#"{{"from": {}, "count": 50}}"#, 1_000 * i);
                    send(&client, &base, Method::POST, "/heavy", &body).await
                } else {
                    send(&client, &base, Method::GET, "/light?msg=x", "").await
                }
            }));
        }
        for call in calls {
            let (status, body) = call.await.unwrap();
            assert_eq!(status, StatusCode::OK, "{kind}: {body}");
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_with_a_message() {
    let server = start(BackendKind::Tokengate, 1024, 256).await;
    for (path, says) in [
        ("/light", "msg"),
        ("/light?msg=", "empty"),
        ("/light?msg=a%20b", "printable"),
        (&format!("/light?msg={}", "x".repeat(300)), "at most 256"),
    ] {
        let (status, body) = server.send(Method::GET, path, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        let message = error_message(&body);
        assert!(message.contains(says), "{path}: {message}");
    }
    for (body, says) in [
        ("", "not a search request"),
        ("{", "not a search request"),
        (r#"{"from": "x", "count": 1}"#, "not a search request"),
        (r#"{"from": 1, "count": 1, "extra": 0}"#, "unknown field"),
        (r#"{"from": 1, "count": 0}"#, "count 0 is out of range"),
        (
            r#"{"from": 1, "count": 1000000}"#,
            "count 1000000 is out of range",
        ),
        (r#"{"from": 10000000000000, "count": 1}"#, "too large"),
    ] {
        let (status, answer) = server.heavy(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = error_message(&answer);
        assert!(message.contains(says), "{body}: {message}");
    }
    // The server is unharmed.
    assert_eq!(server.light("still-fine").await.0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_tokengate_ring_is_a_503_at_once() {
    // One token: while a heavy request holds it, any other request is refused, not queued.
    let server = Arc::new(start(BackendKind::Tokengate, 1, 256).await);
    let slow = {
        let server = server.clone();
        tokio::spawn(async move { server.heavy(&serde_json::to_string(&SLOW).unwrap()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, body) = server.light("refused").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(error_message(&body).contains("tokens is out"), "{body}");
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    // The worker gives its token back just after it publishes the result, so the first
    // request after the answer may still find the ring full for a moment.
    let mut admitted = false;
    for _ in 0..100 {
        if server.light("admitted").await.0 == StatusCode::OK {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(admitted, "the token never came back");
    Arc::into_inner(server).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_heavy_requests_are_a_503_on_every_backend() {
    for kind in BackendKind::ALL {
        if kind == BackendKind::Inline {
            continue; // inline work blocks the async threads: the second request waits.
        }
        let server = Arc::new(start(kind, 1024, 1).await);
        let slow = {
            let server = server.clone();
            tokio::spawn(async move { server.heavy(&serde_json::to_string(&SLOW).unwrap()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (status, body) = server.heavy(r#"{"from": 1, "count": 10}"#).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{kind}: {body}");
        assert!(error_message(&body).contains("in flight"), "{kind}: {body}");
        // Light requests are not limited by the heavy bound.
        assert_eq!(server.light("light").await.0, StatusCode::OK, "{kind}");
        assert_eq!(slow.await.unwrap().0, StatusCode::OK, "{kind}");
        Arc::into_inner(server).unwrap().stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shut_down_backend_is_a_503() {
    for kind in BackendKind::ALL {
        let server = start(kind, 1024, 256).await;
        let service = server.service.clone();
        tokio::task::spawn_blocking(move || service.backend().shutdown())
            .await
            .unwrap();
        let (status, body) = server.light("late").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{kind}: {body}");
        let (status, body) = server.heavy(r#"{"from": 1, "count": 10}"#).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{kind}: {body}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_the_requests_in_flight_then_refuses_connections() {
    for kind in [
        BackendKind::Tokengate,
        BackendKind::SpawnBlocking,
        BackendKind::Rayon,
    ] {
        let server = start(kind, 1024, 256).await;
        let (client, base) = (server.client.clone(), server.base.clone());
        let in_flight = tokio::spawn({
            let (client, base) = (client.clone(), base.clone());
            async move {
                let body = serde_json::to_string(&SLOW).unwrap();
                send(&client, &base, Method::POST, "/heavy", &body).await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.stop().await;
        let (status, body) = in_flight.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{kind}: {body}");
        let out: HeavyOutput = json(&body);
        assert_eq!(out, work::heavy(&SLOW), "{kind}");
        // Nobody listens any more.
        let addr = base.trim_start_matches("http://").to_string();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{kind}: still accepting after shutdown"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn tokengate_heavy_workers_run_at_the_niceness_asked() {
    // A niceness no other test uses, so that this test's threads are the ones counted.
    let mut config = BackendConfig::new(BackendKind::Tokengate);
    config.cores = 2;
    config.heavy_nice = 7;
    let backend = Backend::new(&config).unwrap();
    let niceness_7 = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| {
            let path = task.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            // Field 19 is the niceness; the fields after the ")" that ends the name start at 3.
            let nice: i32 = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(16)?
                .parse()
                .ok()?;
            (comm.starts_with("tokengate-worke") && nice == 7).then_some(())
        })
        .count();
    assert_eq!(
        niceness_7, 2,
        "one heavy worker per core, and not the light worker"
    );
    backend.shutdown();
}
