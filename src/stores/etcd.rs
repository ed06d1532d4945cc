//! etcd (3.4): one member per node; clients speak to the member on their
//! home node through etcd's v3 JSON gateway (`/v3/kv/range`, `put`, `txn`),
//! so no protoc or gRPC stack is needed to build faultline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::options::serialize_word;
use super::registry::{Entry, Requirement};
use super::wire::http::Http;
use super::wire::{b64_decode, b64_encode, cas_pair, decode, encode};
use super::{
    Choice, Client, ClientError, Cluster, Completion, DbOpts, Launch, Needs, Operation, Role,
    Store, StoreError, fail, info, ok,
};
use faultline_workloads::workload::WorkloadKind;

/// Client port.
pub const CLIENT_PORT: u16 = 2379;
/// Peer port.
pub const PEER_PORT: u16 = 2380;
/// The Debian packages.
pub const INSTALL: &str = "apt-get install -y etcd-server etcd-client";

/// The registry line's entry.
pub const ENTRY: Entry = Entry {
    name: "etcd",
    parse: Etcd::parse,
    doctor: &[Requirement {
        what: "etcd (--db etcd)",
        program: "etcd",
        install: INSTALL,
        also_in: None,
    }],
};

/// How reads are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// Through the leader's read index (the default).
    Linearizable,
    /// From the member's local state (may be stale).
    Serializable,
}

impl Choice for Reads {
    const CHOICES: &'static [(&'static str, Reads)] = &[
        ("linearizable", Reads::Linearizable),
        ("serializable", Reads::Serializable),
    ];
}

/// etcd's options.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Etcd {
    /// `reads=linearizable|serializable`.
    #[serde(serialize_with = "serialize_word")]
    pub reads: Reads,
    /// `bindir=DIR`: where the binaries are (default: PATH).
    pub bindir: Option<PathBuf>,
}

impl Etcd {
    fn parse(mut opts: DbOpts) -> Result<Arc<dyn Store>, String> {
        let reads = opts.take_choice("reads", Reads::Linearizable)?;
        let bindir = opts.take_path("bindir");
        opts.finish("reads, bindir")?;
        Ok(Arc::new(Etcd { reads, bindir }))
    }
}

#[async_trait]
impl Store for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn label(&self) -> String {
        format!("etcd-{}", self.reads.word())
    }

    fn describe(&self) -> String {
        format!("etcd ({} reads)", self.reads.word())
    }

    fn options(&self) -> Value {
        json!(self)
    }

    fn check_workload(&self, w: WorkloadKind) -> Result<(), String> {
        super::register_and_kv_only("etcd", w)
    }

    fn needs(&self) -> Result<Needs, String> {
        Ok(Needs {
            db: "etcd",
            programs: vec!["etcd"],
            bindir: self.bindir.clone(),
            install: INSTALL,
            ..Needs::default()
        })
    }

    /// One member per node, all in the initial cluster.
    async fn start(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        let etcd = launch.program("etcd")?.display().to_string();
        let cluster = launch.cluster();
        for (i, n) in launch.nodes().iter().enumerate() {
            let data = launch.node_dir(&n.name)?.join("etcd.data");
            let argv = member_argv(
                &etcd,
                &cluster,
                i,
                &data.display().to_string(),
                launch.name(),
            );
            launch.spawn(&n.name, "etcd", argv).await?;
        }
        Ok(())
    }

    /// Every member says it is healthy.
    async fn ready(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        for n in launch.nodes() {
            let addr = std::net::SocketAddr::new(n.ip.into(), CLIENT_PORT);
            launch
                .wait_for(
                    Duration::from_secs(30),
                    &format!("etcd on {}", n.name),
                    || async move {
                        let mut h = Http::new(addr);
                        let (st, body) = h
                            .get("/health", Instant::now() + Duration::from_secs(1))
                            .await
                            .map_err(|e| e.to_string())?;
                        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                        if st == 200 && v["health"] == "true" {
                            Ok(())
                        } else {
                            Err(format!(
                                "/health: {st} {}",
                                String::from_utf8_lossy(&body).trim()
                            ))
                        }
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// The leader.
    async fn primaries(&self, cluster: &Cluster) -> Vec<String> {
        leader(cluster).await.into_iter().collect()
    }

    fn client_port(&self) -> Option<u16> {
        Some(CLIENT_PORT)
    }

    fn client(&self, cluster: &Arc<Cluster>, role: Role) -> Box<dyn Client> {
        Box::new(EtcdClient::new(
            cluster.clone(),
            role,
            self.reads == Reads::Serializable,
        ))
    }
}

/// The command line of the member on node `i` of `cluster`, its data in
/// `data`, every node in the initial cluster.
fn member_argv(etcd: &str, cluster: &Cluster, i: usize, data: &str, token: &str) -> Vec<String> {
    let initial: Vec<String> = cluster
        .nodes
        .iter()
        .map(|(name, ip)| format!("{name}=http://{ip}:{PEER_PORT}"))
        .collect();
    let (name, ip) = &cluster.nodes[i];
    vec![
        etcd.to_string(),
        format!("--name={name}"),
        format!("--data-dir={data}"),
        format!("--listen-peer-urls=http://{ip}:{PEER_PORT}"),
        format!("--initial-advertise-peer-urls=http://{ip}:{PEER_PORT}"),
        format!("--listen-client-urls=http://{ip}:{CLIENT_PORT},http://127.0.0.1:{CLIENT_PORT}"),
        format!("--advertise-client-urls=http://{ip}:{CLIENT_PORT}"),
        format!("--initial-cluster={}", initial.join(",")),
        format!("--initial-cluster-token=faultline-{token}"),
        "--initial-cluster-state=new".into(),
        "--logger=zap".into(),
        "--log-outputs=stderr".into(),
    ]
}

/// The member that is leader, according to the members themselves.
pub async fn leader(cluster: &Cluster) -> Option<String> {
    for (i, (name, _)) in cluster.nodes.iter().enumerate() {
        let mut h = Http::new(cluster.addr(i, CLIENT_PORT));
        if let Ok((200, body)) = h
            .post(
                "/v3/maintenance/status",
                b"{}",
                Instant::now() + Duration::from_secs(1),
            )
            .await
        {
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            let me = &v["header"]["member_id"];
            if !me.is_null() && *me == v["leader"] {
                return Some(name.clone());
            }
        }
    }
    None
}

/// A client of the member on the worker's home node.
struct EtcdClient {
    cluster: Arc<Cluster>,
    node: usize,
    http: Http,
    serializable: bool,
}

impl EtcdClient {
    fn new(cluster: Arc<Cluster>, role: Role, serializable: bool) -> EtcdClient {
        let node = role.home(cluster.nodes.len());
        EtcdClient {
            http: Http::new(cluster.addr(node, CLIENT_PORT)),
            cluster,
            node,
            serializable,
        }
    }

    async fn rpc(
        &mut self,
        path: &str,
        body: Value,
        deadline: Instant,
    ) -> Result<Result<Value, String>, ClientError> {
        let (status, body) = self
            .http
            .post(path, body.to_string().as_bytes(), deadline)
            .await?;
        let v: Value = serde_json::from_slice(&body).map_err(|_| {
            ClientError::Indefinite(format!(
                "{path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ))
        })?;
        if status == 200 && v.get("error").is_none() {
            Ok(Ok(v))
        } else {
            let msg = v["error"]
                .as_str()
                .or(v["message"].as_str())
                .unwrap_or("error");
            Ok(Err(format!("HTTP {status}: {msg}")))
        }
    }
}

#[async_trait]
impl Client for EtcdClient {
    async fn ready(&mut self, deadline: Instant) -> Result<(), ClientError> {
        self.http.connect(deadline).await
    }

    fn reset(&mut self) {
        self.http = Http::new(self.cluster.addr(self.node, CLIENT_PORT));
    }

    /// The member this client talks to.
    fn target(&self, _f: &str) -> String {
        self.cluster.name(self.node)
    }

    /// read, write, cas.
    async fn call(
        &mut self,
        op: Operation<'_>,
        deadline: Instant,
    ) -> Result<Completion, ClientError> {
        let value = op.value;
        let k = b64_encode(op.key.as_bytes());
        match op.f {
            "read" => {
                let mut req = json!({"key": k});
                if self.serializable {
                    req["serializable"] = json!(true);
                }
                match self.rpc("/v3/kv/range", req, deadline).await? {
                    Ok(v) => {
                        let got = v["kvs"]
                            .get(0)
                            .and_then(|kv| kv["value"].as_str())
                            .map(|b| b64_decode(b).map(|b| decode(&String::from_utf8_lossy(&b))));
                        match got {
                            None => ok(Value::Null),
                            Some(Some(v)) => ok(v),
                            Some(None) => {
                                Err(ClientError::Definite("bad base64 in a range reply".into()))
                            }
                        }
                    }
                    Err(e) => fail(e),
                }
            }
            "write" => {
                let req = json!({"key": k, "value": b64_encode(encode(value).as_bytes())});
                match self.rpc("/v3/kv/put", req, deadline).await? {
                    Ok(_) => ok(value.clone()),
                    Err(e) => info(e),
                }
            }
            "cas" => {
                let Some((expected, new)) = cas_pair(value) else {
                    return fail("bad request: cas needs [expected, new]");
                };
                let compare = if expected.is_null() {
                    json!({"key": k, "result": "EQUAL", "target": "VERSION", "version": "0"})
                } else {
                    json!({"key": k, "result": "EQUAL", "target": "VALUE", "value": b64_encode(encode(&expected).as_bytes())})
                };
                let req = json!({
                    "compare": [compare],
                    "success": [{"request_put": {"key": k, "value": b64_encode(encode(&new).as_bytes())}}],
                });
                match self.rpc("/v3/kv/txn", req, deadline).await? {
                    Ok(v) if v["succeeded"] == true => ok(value.clone()),
                    Ok(_) => fail("cas-mismatch"),
                    Err(e) => info(e),
                }
            }
            other => fail(format!(
                "bad request: etcd does not do `{other}` (read, write, cas)"
            )),
        }
    }
}
