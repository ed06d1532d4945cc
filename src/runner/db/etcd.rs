//! etcd (3.4): one member per node; clients speak to the member on their
//! home node through etcd's v3 JSON gateway (`/v3/kv/range`, `put`, `txn`),
//! so no protoc or gRPC stack is needed to build faultline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::wire::{Http, b64_decode, b64_encode};
use super::{Cluster, Role, cas_pair, decode, encode, fail, info, ok, spawn, wait_for};
use crate::lab::Lab;
use crate::lab::proc::Server;
use crate::node::client::ClientError;
use crate::node::protocol::Reply;
use crate::runner::{DbConfig, RunError};

/// Client port.
pub const CLIENT_PORT: u16 = 2379;
/// Peer port.
pub const PEER_PORT: u16 = 2380;

/// Starts the members and waits until each is healthy; returns the leader.
pub async fn start(
    lab: &Lab,
    programs: &BTreeMap<&'static str, PathBuf>,
    servers: &mut Vec<Server>,
) -> Result<Vec<String>, RunError> {
    let etcd = programs
        .get("etcd")
        .ok_or_else(|| RunError::StoreDown("etcd: no binary".into()))?;
    let initial: Vec<String> = lab
        .nodes()
        .iter()
        .map(|n| format!("{}=http://{}:{PEER_PORT}", n.name, n.ip))
        .collect();
    for n in lab.nodes() {
        let data = lab.node_dir(n)?.join("etcd.data");
        let argv = vec![
            etcd.display().to_string(),
            format!("--name={}", n.name),
            format!("--data-dir={}", data.display()),
            format!("--listen-peer-urls=http://{}:{PEER_PORT}", n.ip),
            format!("--initial-advertise-peer-urls=http://{}:{PEER_PORT}", n.ip),
            format!(
                "--listen-client-urls=http://{}:{CLIENT_PORT},http://127.0.0.1:{CLIENT_PORT}",
                n.ip
            ),
            format!("--advertise-client-urls=http://{}:{CLIENT_PORT}", n.ip),
            format!("--initial-cluster={}", initial.join(",")),
            format!("--initial-cluster-token=faultline-{}", lab.name()),
            "--initial-cluster-state=new".into(),
            "--logger=zap".into(),
            "--log-outputs=stderr".into(),
        ];
        spawn(lab, servers, &n.name, "etcd", argv)?;
    }
    for n in lab.nodes() {
        let addr = std::net::SocketAddr::new(n.ip.into(), CLIENT_PORT);
        wait_for(
            servers,
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
    Ok(leader(lab).await.into_iter().collect())
}

/// The member that is leader, according to the members themselves.
pub async fn leader(lab: &Lab) -> Option<String> {
    for n in lab.nodes() {
        let mut h = Http::new(std::net::SocketAddr::new(n.ip.into(), CLIENT_PORT));
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
                return Some(n.name.clone());
            }
        }
    }
    None
}

/// A client of the member on the worker's home node.
pub struct EtcdClient {
    cluster: Arc<Cluster>,
    node: usize,
    http: Http,
    serializable: bool,
}

impl EtcdClient {
    /// A client for `role`.
    pub fn new(cluster: Arc<Cluster>, role: Role) -> EtcdClient {
        let node = role.home(cluster.nodes.len());
        let serializable =
            matches!(&cluster.db, DbConfig::Etcd { reads, .. } if reads == "serializable");
        EtcdClient {
            http: Http::new(cluster.addr(node, CLIENT_PORT)),
            cluster,
            node,
            serializable,
        }
    }

    /// Connects.
    pub async fn ready(&mut self, deadline: Instant) -> Result<(), ClientError> {
        self.http.connect(deadline).await
    }

    /// Drops the connection.
    pub fn reset(&mut self) {
        self.http = Http::new(self.cluster.addr(self.node, CLIENT_PORT));
    }

    /// The member this client talks to.
    pub fn target(&self) -> String {
        self.cluster.name(self.node)
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

    /// read, write, cas.
    pub async fn call(
        &mut self,
        f: &str,
        key: &str,
        value: Value,
        deadline: Instant,
    ) -> Result<Reply, ClientError> {
        let k = b64_encode(key.as_bytes());
        match f {
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
                    Err(e) => fail(Value::Null, e),
                }
            }
            "write" => {
                let req = json!({"key": k, "value": b64_encode(encode(&value).as_bytes())});
                match self.rpc("/v3/kv/put", req, deadline).await? {
                    Ok(_) => ok(value),
                    Err(e) => info(value, e),
                }
            }
            "cas" => {
                let Some((expected, new)) = cas_pair(&value) else {
                    return fail(value, "bad request: cas needs [expected, new]");
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
                    Ok(v) if v["succeeded"] == true => ok(value),
                    Ok(_) => fail(value, "cas-mismatch"),
                    Err(e) => info(value, e),
                }
            }
            other => fail(
                value,
                format!("bad request: etcd does not do `{other}` (read, write, cas)"),
            ),
        }
    }
}
