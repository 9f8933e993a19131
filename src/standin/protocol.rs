//! The Kafka protocol on the client port, with `kafka-protocol`'s typed messages: framing,
//! version negotiation (ApiVersions lists only what [`SUPPORTED`] says, and a request outside
//! it closes the connection, as a broker does), and the handlers — Metadata, CreateTopics,
//! Produce (acks 0/1/-1, idempotence), Fetch (leader only, up to the high watermark),
//! ListOffsets, OffsetForLeaderEpoch, DescribeConfigs, InitProducerId; FindCoordinator and the
//! consumer-group APIs (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch) go to [`super::group`].
//!
//! Requests on one connection are taken in order (a Produce appends before the next request
//! is read) and answered in order, though several may wait at once (acks=all, long polls).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{ApiVersion, SupportedFeatureKey};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, FetchRequest, FetchResponse, FindCoordinatorRequest,
    HeartbeatRequest, InitProducerIdRequest, InitProducerIdResponse, JoinGroupRequest, LeaveGroupRequest,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetFetchRequest, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest, ProduceResponse,
    ProducerId, RequestHeader, ResponseHeader, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use super::batch;
use super::broker::{Broker, PartitionKey, TopicMeta, MIN_INSYNC_REPLICAS};
use super::bugs::{Bug, REORDER_HOLD};
use super::idempotence::Check;

/// Requests larger than this (or with a negative size) close the connection, as a broker's
/// `socket.request.max.bytes` does.
pub const MAX_REQUEST: i32 = 100 << 20;

/// What the stand-in calls itself where the protocol has room for a name (Metadata's cluster
/// id, a feature in ApiVersions v3); it never claims to be Chronik.
pub const NAME: &str = "chronik-chaos-stand-in";

/// The APIs and versions implemented (and advertised): (key, min, max). The group APIs'
/// maxima are librdkafka 2.12's.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 9),
    (ApiKey::FindCoordinator, 0, 2),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 4),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 3),
    (ApiKey::DescribeConfigs, 1, 1),
    (ApiKey::JoinGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 3),
    (ApiKey::Heartbeat, 0, 3),
    (ApiKey::LeaveGroup, 0, 1),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
];

/// The longest a Produce (acks=all) or a Fetch waits.
const MAX_WAIT: Duration = Duration::from_secs(30);

type Reply = Pin<Box<dyn Future<Output = Result<Option<Vec<u8>>, String>> + Send>>;

/// Serves Kafka clients on the node's Kafka port.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    while let Ok((s, _)) = listener.accept().await {
        let _ = s.set_nodelay(true);
        tokio::spawn(conn(s, broker.clone()));
    }
}

/// Per-connection state the `reorder-batches` bug needs.
#[derive(Default)]
struct ConnState {
    batches_seen: HashMap<(i64, PartitionKey), u64>,
}

async fn conn(s: TcpStream, broker: Arc<Broker>) {
    let (mut rd, mut wr) = s.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<tokio::task::JoinHandle<Result<Option<Vec<u8>>, String>>>();
    let id = broker.id();
    let writer = tokio::spawn(async move {
        while let Some(reply) = rx.recv().await {
            match reply.await {
                Ok(Ok(Some(frame))) => {
                    if wr.write_all(&frame).await.is_err() {
                        return;
                    }
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    println!("stand-in node {id}: closing a client connection: {e}");
                    return;
                }
                Err(_) => return,
            }
        }
    });
    let mut state = ConnState::default();
    while let Ok(len) = rd.read_i32().await {
        if !(8..=MAX_REQUEST).contains(&len) {
            break;
        }
        let mut body = vec![0u8; len as usize];
        if rd.read_exact(&mut body).await.is_err() {
            break;
        }
        match dispatch(&broker, Bytes::from(body), &mut state) {
            Ok(Some(reply)) => {
                if tx.send(tokio::spawn(reply)).is_err() {
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                println!("stand-in node {id}: closing a client connection: {e}");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn supported(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k == key).map(|(_, min, max)| (*min, *max))
}

fn ready(frame: Result<Option<Vec<u8>>, String>) -> Reply {
    Box::pin(async move { frame })
}

/// The size-prefixed response: header (its version from the API) and body.
fn frame<T: Encodable>(key: ApiKey, version: i16, correlation: i32, body: &T) -> Result<Option<Vec<u8>>, String> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation)
        .encode(&mut buf, key.response_header_version(version))
        .map_err(|e| format!("encoding a {key:?} v{version} response header: {e}"))?;
    body.encode(&mut buf, version).map_err(|e| format!("encoding a {key:?} v{version} response: {e}"))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(Some(buf.to_vec()))
}

/// Decodes one request and starts answering it. `Ok(None)`: no answer is due (acks=0).
/// `Err`: the connection must close.
fn dispatch(broker: &Arc<Broker>, mut body: Bytes, conn: &mut ConnState) -> Result<Option<Reply>, String> {
    let raw_key = i16::from_be_bytes([body[0], body[1]]);
    let version = i16::from_be_bytes([body[2], body[3]]);
    let correlation = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
    let key = ApiKey::try_from(raw_key).map_err(|_| format!("unknown api key {raw_key}"))?;
    let (min, max) = supported(key).ok_or_else(|| format!("unsupported api {key:?}"))?;
    if key == ApiKey::ApiVersions && !(min..=max).contains(&version) {
        // Like a broker: the v0 format with UNSUPPORTED_VERSION and the list.
        return Ok(Some(ready(Ok(Some(api_versions_fallback(correlation))))));
    }
    if !(min..=max).contains(&version) {
        return Err(format!("unsupported version {version} of {key:?}"));
    }
    let header = RequestHeader::decode(&mut body, key.request_header_version(version))
        .map_err(|e| format!("bad {key:?} v{version} request header: {e}"))?;
    let correlation = header.correlation_id;
    macro_rules! decode {
        ($t:ty) => {
            <$t>::decode(&mut body, version).map_err(|e| format!("bad {key:?} v{version} request: {e}"))?
        };
    }
    let b = broker.clone();
    let reply: Reply = match key {
        ApiKey::ApiVersions => {
            let _ = decode!(ApiVersionsRequest);
            ready(frame(key, version, correlation, &api_versions(version)))
        }
        ApiKey::Metadata => {
            let req = decode!(MetadataRequest);
            ready(frame(key, version, correlation, &metadata(broker, &req, version)))
        }
        ApiKey::CreateTopics => {
            let req = decode!(CreateTopicsRequest);
            let (resp, created) = create_topics(broker, &req);
            let wait = Duration::from_millis(req.timeout_ms.clamp(0, 10_000) as u64);
            Box::pin(async move {
                await_peers_know(&b, &created, wait).await;
                frame(key, version, correlation, &resp)
            })
        }
        ApiKey::Produce => {
            let req = decode!(ProduceRequest);
            let acks = req.acks;
            let pending = produce(broker, req, conn);
            if acks == 0 {
                return Ok(None);
            }
            Box::pin(async move {
                let resp = finish_produce(&b, pending).await;
                frame(key, version, correlation, &resp)
            })
        }
        ApiKey::Fetch => {
            let req = decode!(FetchRequest);
            Box::pin(async move {
                let resp = fetch(&b, &req).await;
                frame(key, version, correlation, &resp)
            })
        }
        ApiKey::ListOffsets => {
            let req = decode!(ListOffsetsRequest);
            ready(frame(key, version, correlation, &list_offsets(broker, &req, version)))
        }
        ApiKey::OffsetForLeaderEpoch => {
            let req = decode!(OffsetForLeaderEpochRequest);
            ready(frame(key, version, correlation, &offset_for_leader_epoch(broker, &req)))
        }
        ApiKey::DescribeConfigs => {
            let req = decode!(DescribeConfigsRequest);
            ready(frame(key, version, correlation, &describe_configs(broker, &req)))
        }
        ApiKey::FindCoordinator => {
            let req = decode!(FindCoordinatorRequest);
            ready(frame(key, version, correlation, &broker.groups.find_coordinator(&req)))
        }
        ApiKey::JoinGroup => {
            let req = decode!(JoinGroupRequest);
            let client = header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
            let answer = broker.groups.join_group(&req, version, &client);
            Box::pin(async move { frame(key, version, correlation, &answer.await) })
        }
        ApiKey::SyncGroup => {
            let answer = broker.groups.sync_group(&decode!(SyncGroupRequest));
            Box::pin(async move { frame(key, version, correlation, &answer.await) })
        }
        ApiKey::Heartbeat => {
            let req = decode!(HeartbeatRequest);
            ready(frame(key, version, correlation, &broker.groups.heartbeat(&req)))
        }
        ApiKey::LeaveGroup => {
            let req = decode!(LeaveGroupRequest);
            ready(frame(key, version, correlation, &broker.groups.leave_group(&req)))
        }
        ApiKey::OffsetCommit => {
            let req = decode!(OffsetCommitRequest);
            ready(frame(key, version, correlation, &broker.groups.offset_commit(&req, version)))
        }
        ApiKey::OffsetFetch => {
            let req = decode!(OffsetFetchRequest);
            ready(frame(key, version, correlation, &broker.groups.offset_fetch(&req, version)))
        }
        ApiKey::InitProducerId => {
            let req = decode!(InitProducerIdRequest);
            ready(frame(key, version, correlation, &init_producer_id(broker, &req)))
        }
        _ => return Err(format!("unsupported api {key:?}")),
    };
    Ok(Some(reply))
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

// ---- ApiVersions ----

fn api_versions(version: i16) -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default().with_api_keys(
        SUPPORTED
            .iter()
            .map(|(k, min, max)| {
                ApiVersion::default().with_api_key(*k as i16).with_min_version(*min).with_max_version(*max)
            })
            .collect(),
    );
    if version >= 3 {
        resp.supported_features =
            vec![SupportedFeatureKey::default().with_name(text(NAME)).with_min_version(1).with_max_version(1)];
    }
    resp
}

/// ApiVersions v0 with UNSUPPORTED_VERSION, for a version this node does not speak.
fn api_versions_fallback(correlation: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&correlation.to_be_bytes());
    body.extend_from_slice(&code(ResponseError::UnsupportedVersion).to_be_bytes());
    body.extend_from_slice(&(SUPPORTED.len() as i32).to_be_bytes());
    for (key, min, max) in SUPPORTED {
        for v in [*key as i16, *min, *max] {
            body.extend_from_slice(&v.to_be_bytes());
        }
    }
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

// ---- Metadata ----

/// `host:port` as Metadata and FindCoordinator advertise it.
pub(super) fn host_port(addr: &str) -> (String, i32) {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "0"));
    (host.to_string(), port.parse().unwrap_or(0))
}

fn metadata(broker: &Broker, req: &MetadataRequest, version: i16) -> MetadataResponse {
    let brokers = broker
        .config
        .peers
        .iter()
        .map(|p| {
            let (host, port) = host_port(&p.kafka);
            MetadataResponseBroker::default().with_node_id(BrokerId(p.id as i32)).with_host(text(host)).with_port(port)
        })
        .collect();
    let st = broker.lock();
    let wanted: Vec<String> = match &req.topics {
        Some(ts) if !(version == 0 && ts.is_empty()) => {
            ts.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect()
        }
        _ => st.topics.keys().cloned().collect(),
    };
    let topics = wanted
        .iter()
        .map(|t| {
            let Some(meta) = st.topics.get(t) else {
                return MetadataResponseTopic::default()
                    .with_name(Some(name(t)))
                    .with_error_code(code(ResponseError::UnknownTopicOrPartition));
            };
            let partitions = (0..meta.partitions)
                .map(|index| {
                    let look = broker.look(&st, meta, index);
                    let ids = |v: &[u64]| v.iter().map(|id| BrokerId(*id as i32)).collect::<Vec<_>>();
                    MetadataResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(if look.leader.is_some() {
                            0
                        } else {
                            code(ResponseError::LeaderNotAvailable)
                        })
                        .with_leader_id(BrokerId(look.leader.map_or(-1, |l| l as i32)))
                        .with_leader_epoch(look.epoch)
                        .with_replica_nodes(ids(&look.replicas))
                        .with_isr_nodes(ids(&look.isr))
                })
                .collect();
            MetadataResponseTopic::default().with_name(Some(name(t))).with_partitions(partitions)
        })
        .collect();
    let controller = broker.reach.leader(broker.id(), broker.config.ids().len()).unwrap_or(broker.id());
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(text(NAME)))
        .with_controller_id(BrokerId(controller as i32))
        .with_topics(topics)
}

// ---- CreateTopics ----

fn valid_topic_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 249
        && n != "."
        && n != ".."
        && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn create_topics(broker: &Broker, req: &CreateTopicsRequest) -> (CreateTopicsResponse, Vec<String>) {
    let nodes = broker.config.ids().len();
    let mut results = Vec::new();
    let mut created = Vec::new();
    for t in &req.topics {
        let topic = t.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(t.name.clone());
        let fail =
            |e: ResponseError, msg: String| result.clone().with_error_code(code(e)).with_error_message(Some(text(msg)));
        let configs: BTreeMap<String, String> =
            t.configs.iter().filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string()))).collect();
        let rf = if t.replication_factor == -1 {
            broker.config.default_replication_factor()
        } else {
            t.replication_factor.max(0) as usize
        };
        let partitions = if t.num_partitions == -1 { 1 } else { t.num_partitions };
        let min_isr = configs.get(MIN_INSYNC_REPLICAS).map(|v| v.parse::<usize>());
        let outcome = if !valid_topic_name(&topic) {
            fail(ResponseError::InvalidTopicException, format!("invalid topic name {topic:?}"))
        } else if !t.assignments.is_empty() {
            fail(ResponseError::InvalidRequest, "the stand-in assigns replicas itself".into())
        } else if partitions <= 0 {
            fail(ResponseError::InvalidPartitions, format!("{partitions} partitions"))
        } else if rf == 0 || rf > nodes {
            fail(ResponseError::InvalidReplicationFactor, format!("replication factor {rf} with {nodes} nodes"))
        } else if min_isr.as_ref().is_some_and(|m| !m.as_ref().is_ok_and(|m| (1..=rf).contains(m))) {
            fail(ResponseError::InvalidConfig, format!("{MIN_INSYNC_REPLICAS} must be 1..={rf}"))
        } else if broker.lock().topics.contains_key(&topic) {
            fail(ResponseError::TopicAlreadyExists, format!("topic {topic} already exists"))
        } else if req.validate_only {
            result.clone().with_num_partitions(partitions).with_replication_factor(rf as i16)
        } else {
            let meta = TopicMeta { name: topic.clone(), partitions, replication_factor: rf, configs };
            let mut st = broker.lock();
            match broker.add_topics(&mut st, [meta]) {
                // Created meanwhile by a peer's sync.
                Ok(added) if added.is_empty() => {
                    fail(ResponseError::TopicAlreadyExists, format!("topic {topic} already exists"))
                }
                Ok(_) => {
                    println!(
                        "stand-in node {}: created topic {topic} ({partitions} partitions, replication factor {rf})",
                        broker.id()
                    );
                    created.push(topic.clone());
                    result.clone().with_num_partitions(partitions).with_replication_factor(rf as i16)
                }
                Err(e) => fail(ResponseError::KafkaStorageError, format!("cannot store topic {topic}: {e}")),
            }
        };
        results.push(outcome);
    }
    (CreateTopicsResponse::default().with_topics(results), created)
}

/// Waits (at most `wait`) until every peer this node reaches has synced the new topics.
async fn await_peers_know(broker: &Broker, topics: &[String], wait: Duration) {
    if topics.is_empty() {
        return;
    }
    let deadline = Instant::now() + wait;
    let mut progress = broker.watch();
    loop {
        progress.borrow_and_update();
        let reachable = broker.reach.reachable();
        let done = {
            let st = broker.lock();
            reachable
                .iter()
                .all(|peer| st.peer_topics.get(peer).is_some_and(|known| topics.iter().all(|t| known.contains(t))))
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if done || left.is_zero() {
            return;
        }
        let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), progress.changed()).await;
    }
}

// ---- Produce ----

enum PartResult {
    Done(PartitionProduceResponse),
    /// Appended; acks=all waits until the high watermark passes `end` in `epoch`.
    Wait {
        resp: PartitionProduceResponse,
        key: PartitionKey,
        epoch: i32,
        end: i64,
        deadline: Instant,
    },
    Held(oneshot::Receiver<PartResult>),
}

struct PendingProduce {
    topics: Vec<(TopicName, Vec<PartResult>)>,
}

fn part_error(index: i32, e: ResponseError) -> PartResult {
    PartResult::Done(
        PartitionProduceResponse::default().with_index(index).with_error_code(code(e)).with_base_offset(-1),
    )
}

fn produce(broker: &Arc<Broker>, req: ProduceRequest, conn: &mut ConnState) -> PendingProduce {
    let deadline = Instant::now() + Duration::from_millis(req.timeout_ms.max(0) as u64).min(MAX_WAIT);
    let mut topics = Vec::new();
    for t in req.topic_data {
        let topic = t.name.0.to_string();
        let mut parts = Vec::new();
        for pd in t.partition_data {
            let key = (topic.clone(), pd.index);
            let records = pd.records.unwrap_or_default();
            let hold = broker.has(Bug::ReorderBatches) && {
                let pid = batch::split(&records).ok().and_then(|b| b.first().map(|(h, _)| h.producer_id));
                pid.is_some_and(|pid| {
                    let n = conn.batches_seen.entry((pid, key.clone())).or_default();
                    *n += 1;
                    *n % 2 == 0
                })
            };
            if hold {
                let (tx, rx) = oneshot::channel();
                let b = broker.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(REORDER_HOLD).await;
                    let _ = tx.send(append_partition(&b, key, records, req.acks, deadline));
                });
                parts.push(PartResult::Held(rx));
            } else {
                parts.push(append_partition(broker, key, records, req.acks, deadline));
            }
        }
        topics.push((t.name, parts));
    }
    PendingProduce { topics }
}

/// Appends one partition's batches if this node leads it; the answer, or what to wait for.
fn append_partition(broker: &Broker, key: PartitionKey, records: Bytes, acks: i16, deadline: Instant) -> PartResult {
    let index = key.1;
    let batches = match batch::split(&records) {
        Ok(b) => b,
        Err(_) => return part_error(index, ResponseError::CorruptMessage),
    };
    if batches.iter().any(|(h, _)| h.is_transactional_or_control()) {
        return part_error(index, ResponseError::InvalidRecord);
    }
    let ack_early = broker.has(Bug::AckBeforeReplication);
    let relaxed = broker.has(Bug::ReorderBatches);
    let mut st = broker.lock();
    let known = st.topics.contains_key(&key.0);
    let Some(p) = st.partitions.get_mut(&key) else {
        return part_error(
            index,
            if known { ResponseError::NotLeaderOrFollower } else { ResponseError::UnknownTopicOrPartition },
        );
    };
    if !p.is_leader() {
        return part_error(index, ResponseError::NotLeaderOrFollower);
    }
    if acks == -1 && !ack_early && p.isr(Instant::now()).len() < p.spec.min_isr {
        return part_error(index, ResponseError::NotEnoughReplicas);
    }
    let mut first = None;
    let mut end = 0;
    for (h, bytes) in batches {
        let check = if broker.has(Bug::IgnoreSequence) { Check::Append } else { p.producers.check(&h) };
        let check = match check {
            Check::OutOfOrder | Check::OldDuplicate if relaxed => Check::Append,
            c => c,
        };
        match check {
            Check::Append => match p.append_batch(h, &bytes) {
                Ok((base, e)) => {
                    first.get_or_insert(base);
                    end = e;
                }
                Err(e) => {
                    // A leader that cannot write (a full disk) steps down, so that another
                    // replica takes over; nothing of this request is acknowledged.
                    println!("stand-in node {}: append to {}-{index}: {e}; stepping down", broker.id(), key.0);
                    p.resign(Instant::now());
                    return part_error(index, ResponseError::KafkaStorageError);
                }
            },
            Check::Duplicate { base_offset, end_offset } => {
                first.get_or_insert(base_offset);
                end = end.max(end_offset);
            }
            Check::OldDuplicate => return part_error(index, ResponseError::DuplicateSequenceNumber),
            Check::OutOfOrder => return part_error(index, ResponseError::OutOfOrderSequenceNumber),
            Check::Fenced => return part_error(index, ResponseError::InvalidProducerEpoch),
        }
    }
    let epoch = p.epoch();
    drop(st);
    broker.bump();
    let resp = PartitionProduceResponse::default()
        .with_index(index)
        .with_base_offset(first.unwrap_or(-1))
        .with_log_append_time_ms(-1)
        .with_log_start_offset(0);
    if acks == -1 && !ack_early {
        PartResult::Wait { resp, key, epoch, end, deadline }
    } else {
        PartResult::Done(resp)
    }
}

async fn finish_produce(broker: &Broker, pending: PendingProduce) -> ProduceResponse {
    let mut responses = Vec::new();
    for (topic, parts) in pending.topics {
        let mut out = Vec::new();
        for part in parts {
            out.push(resolve(broker, part).await);
        }
        responses.push(TopicProduceResponse::default().with_name(topic).with_partition_responses(out));
    }
    ProduceResponse::default().with_responses(responses)
}

async fn resolve(broker: &Broker, part: PartResult) -> PartitionProduceResponse {
    let part = match part {
        PartResult::Held(rx) => match rx.await {
            Ok(p) => p,
            Err(_) => {
                return PartitionProduceResponse::default().with_error_code(code(ResponseError::UnknownServerError))
            }
        },
        p => p,
    };
    match part {
        PartResult::Done(resp) => resp,
        PartResult::Wait { resp, key, epoch, end, deadline } => {
            match await_commit(broker, &key, epoch, end, deadline).await {
                None => resp,
                Some(e) => resp.with_error_code(code(e)).with_base_offset(-1),
            }
        }
        PartResult::Held(_) => {
            PartitionProduceResponse::default().with_error_code(code(ResponseError::UnknownServerError))
        }
    }
}

/// Waits until the partition's high watermark reaches `end` while this node still leads it in
/// `epoch`. `None` when it did; else the error to answer.
async fn await_commit(
    broker: &Broker,
    key: &PartitionKey,
    epoch: i32,
    end: i64,
    deadline: Instant,
) -> Option<ResponseError> {
    let mut progress = broker.watch();
    loop {
        progress.borrow_and_update();
        {
            let st = broker.lock();
            let p = st.partitions.get(key)?;
            if !p.is_leader() || p.epoch() != epoch {
                return Some(ResponseError::NotLeaderOrFollower);
            }
            if p.high_watermark() >= end {
                return None;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Some(ResponseError::RequestTimedOut);
        }
        let _ = tokio::time::timeout(left, progress.changed()).await;
    }
}

// ---- Fetch ----

async fn fetch(broker: &Broker, req: &FetchRequest) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let mut progress = broker.watch();
    loop {
        progress.borrow_and_update();
        let (resp, bytes, errors) = fetch_once(broker, req);
        let left = deadline.saturating_duration_since(Instant::now());
        if errors || bytes >= req.min_bytes.max(1) as usize || left.is_zero() {
            return resp;
        }
        let _ = tokio::time::timeout(left, progress.changed()).await;
    }
}

/// One pass over the requested partitions: the response, its record bytes, whether any
/// partition had an error.
fn fetch_once(broker: &Broker, req: &FetchRequest) -> (FetchResponse, usize, bool) {
    let st = broker.lock();
    let (mut total, mut errors) = (0usize, false);
    let mut responses = Vec::new();
    for t in &req.topics {
        let topic = t.topic.0.to_string();
        let mut parts = Vec::new();
        for fp in &t.partitions {
            let base = PartitionData::default().with_partition_index(fp.partition);
            let err = |e: ResponseError| base.clone().with_error_code(code(e)).with_high_watermark(-1);
            let data = match st.partitions.get(&(topic.clone(), fp.partition)) {
                None if st.topics.contains_key(&topic) => err(ResponseError::NotLeaderOrFollower),
                None => err(ResponseError::UnknownTopicOrPartition),
                Some(p) if !p.is_leader() => {
                    if broker.has(Bug::EmptyFetchFromFollower) {
                        let hw = p.high_watermark();
                        base.clone().with_high_watermark(hw).with_last_stable_offset(hw).with_log_start_offset(0)
                    } else {
                        err(ResponseError::NotLeaderOrFollower)
                    }
                }
                Some(p) => {
                    let hw = p.high_watermark();
                    // As Kafka: out of range only beyond the log's end. Between the high
                    // watermark and the log end (a new leader whose high watermark has not
                    // caught up yet) the answer is empty, not an error.
                    if fp.fetch_offset < 0 || fp.fetch_offset > p.log.end_offset() {
                        err(ResponseError::OffsetOutOfRange)
                    } else {
                        let max = (fp.partition_max_bytes.max(1) as usize).min(req.max_bytes.max(1) as usize);
                        let records = p.log.read(fp.fetch_offset, hw, max);
                        total += records.len();
                        base.clone()
                            .with_high_watermark(hw)
                            .with_last_stable_offset(hw)
                            .with_log_start_offset(0)
                            .with_records(Some(records))
                    }
                }
            };
            errors |= data.error_code != 0;
            parts.push(data);
        }
        responses.push(FetchableTopicResponse::default().with_topic(t.topic.clone()).with_partitions(parts));
    }
    (FetchResponse::default().with_responses(responses), total, errors)
}

// ---- ListOffsets, OffsetForLeaderEpoch ----

fn list_offsets(broker: &Broker, req: &ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let st = broker.lock();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let topic = t.name.0.to_string();
            let parts = t
                .partitions
                .iter()
                .map(|lp| {
                    let base = ListOffsetsPartitionResponse::default().with_partition_index(lp.partition_index);
                    match st.partitions.get(&(topic.clone(), lp.partition_index)) {
                        None if !st.topics.contains_key(&topic) => {
                            base.with_error_code(code(ResponseError::UnknownTopicOrPartition))
                        }
                        Some(p) if p.is_leader() => {
                            let hw = p.high_watermark();
                            let (offset, ts) = match lp.timestamp {
                                -2 => (0, -1),
                                -1 | -3 => (hw, -1),
                                ts => p.log.offset_for_timestamp(ts, hw).unwrap_or((-1, -1)),
                            };
                            let r = base.with_offset(offset).with_timestamp(ts);
                            if version >= 4 {
                                r.with_leader_epoch(p.epoch())
                            } else {
                                r
                            }
                        }
                        _ => base.with_error_code(code(ResponseError::NotLeaderOrFollower)),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(t.name.clone()).with_partitions(parts)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn offset_for_leader_epoch(broker: &Broker, req: &OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let st = broker.lock();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let topic = t.topic.0.to_string();
            let parts = t
                .partitions
                .iter()
                .map(|op| {
                    let base = EpochEndOffset::default().with_partition(op.partition);
                    match st.partitions.get(&(topic.clone(), op.partition)) {
                        None if !st.topics.contains_key(&topic) => {
                            base.with_error_code(code(ResponseError::UnknownTopicOrPartition))
                        }
                        Some(p) if p.is_leader() => {
                            let (epoch, end) = p.log.end_for_epoch(op.leader_epoch);
                            base.with_leader_epoch(epoch).with_end_offset(end)
                        }
                        _ => base.with_error_code(code(ResponseError::NotLeaderOrFollower)),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(t.topic.clone()).with_partitions(parts)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

// ---- DescribeConfigs, InitProducerId ----

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

fn describe_configs(broker: &Broker, req: &DescribeConfigsRequest) -> DescribeConfigsResponse {
    let st = broker.lock();
    let results = req
        .resources
        .iter()
        .map(|r| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match r.resource_type {
                RESOURCE_TOPIC => match st.topics.get(r.resource_name.as_str()) {
                    None => base
                        .with_error_code(code(ResponseError::UnknownTopicOrPartition))
                        .with_error_message(Some(text(format!("no topic {}", r.resource_name.as_str())))),
                    Some(meta) => {
                        let mut configs: BTreeMap<String, (String, i8)> =
                            meta.configs.iter().map(|(k, v)| (k.clone(), (v.clone(), SOURCE_DYNAMIC_TOPIC))).collect();
                        configs
                            .entry(MIN_INSYNC_REPLICAS.to_string())
                            .or_insert_with(|| (broker.min_isr(meta).to_string(), SOURCE_DEFAULT));
                        let entries = configs
                            .into_iter()
                            .filter(|(k, _)| {
                                r.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|w| w.as_str() == k))
                            })
                            .map(|(k, (v, source))| {
                                DescribeConfigsResourceResult::default()
                                    .with_name(text(k))
                                    .with_value(Some(text(v)))
                                    .with_config_source(source)
                            })
                            .collect();
                        base.with_configs(entries)
                    }
                },
                RESOURCE_BROKER => base,
                _ => base.with_error_code(code(ResponseError::InvalidRequest)),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn init_producer_id(broker: &Broker, req: &InitProducerIdRequest) -> InitProducerIdResponse {
    if req.transactional_id.is_some() {
        return InitProducerIdResponse::default()
            .with_error_code(code(ResponseError::TransactionalIdAuthorizationFailed))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    let (id, epoch) = if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX {
        (req.producer_id.0, req.producer_epoch + 1)
    } else {
        (broker.producer_ids.next(), 0)
    };
    InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch)
}
