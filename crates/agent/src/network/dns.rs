//! The embedded DNS server a task on an overlay network asks, at
//! 127.0.0.11:53 in its own namespace (its `/etc/resolv.conf` names it), as
//! Docker's: a service's name or alias → its VIP (or, `--endpoint-mode
//! dnsrr`, its running tasks' addresses in turn), `tasks.<service>` → every
//! running task's address, a task's container name → its address — on the
//! task's networks only; any other name is forwarded to the node's own
//! resolvers. The socket is made inside the task's namespace and served by
//! the agent; records come from the dispatcher's network view.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use swarmkeep_api::dispatcher::NetworkView;

use super::netns;

/// Docker's embedded DNS address.
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// Docker's TTL for service records.
const TTL: u32 = 600;
/// Forwarded queries of one task in flight at most: beyond, a query is
/// dropped (the task's resolver asks again), so a task flooding its server
/// cannot make the agent hold unbounded sockets and memory.
const MAX_FORWARDS: usize = 32;

/// What a name is on the task's networks: `None` when it is not one of
/// the swarm's (it is forwarded then).
pub(crate) fn resolve(view: &NetworkView, networks: &[String], name: &str, turn: usize) -> Option<Vec<Ipv4Addr>> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let (tasks_of, name) = match name.strip_prefix("tasks.") {
        Some(rest) => (true, rest.to_string()),
        None => (false, name),
    };
    for network in networks
        .iter()
        .filter_map(|id| view.networks.iter().find(|n| n.id == *id))
    {
        for service in &network.services {
            let named = service.name.eq_ignore_ascii_case(&name)
                || service.aliases.iter().any(|a| a.eq_ignore_ascii_case(&name));
            if named {
                let mut addrs: Vec<Ipv4Addr> = service.tasks.iter().filter_map(|t| t.addr.parse().ok()).collect();
                if !tasks_of && !service.vip.is_empty() {
                    return service.vip.parse().ok().map(|v| vec![v]);
                }
                if !addrs.is_empty() {
                    let n = addrs.len();
                    addrs.rotate_left(turn % n);
                }
                return Some(addrs);
            }
            if !tasks_of && let Some(t) = service.tasks.iter().find(|t| t.name.eq_ignore_ascii_case(&name)) {
                return t.addr.parse().ok().map(|a| vec![a]);
            }
        }
    }
    None
}

/// Where other names are asked: the service's own servers (`--dns`) when
/// it has some, else the node's resolvers from its `/etc/resolv.conf`; never
/// a loopback one (a task reaches none of the node's loopback services
/// otherwise; Docker's embedded server leaves them out too).
fn upstreams(given: &[IpAddr]) -> Vec<SocketAddr> {
    let node: Vec<IpAddr> = std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    let servers = if given.is_empty() { &node[..] } else { given };
    servers
        .iter()
        .filter(|ip| !ip.is_loopback())
        .map(|ip| SocketAddr::new(*ip, 53))
        .collect()
}

/// What to do with a packet a task sent.
#[derive(Debug, PartialEq)]
pub(crate) enum Reply {
    /// Answered here.
    Local(Vec<u8>),
    /// Not a swarm name: this query, as parsed and written again, goes to
    /// the node's resolvers.
    Forward(Vec<u8>, u16),
    /// Not a DNS query: dropped.
    Drop,
}

/// Asks the node's resolvers `query` (ID `id`); the first answer with
/// that ID from the server asked.
async fn forward(query: &[u8], id: u16, given: &[IpAddr]) -> Option<Vec<u8>> {
    for server in upstreams(given) {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(socket) = tokio::net::UdpSocket::bind(bind).await else {
            continue;
        };
        // Connected: only the server's datagrams are received.
        if socket.connect(server).await.is_err() || socket.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            if Message::from_vec(&buf[..n]).is_ok_and(|m| m.id() == id) {
                buf.truncate(n);
                return Some(buf);
            }
        }
    }
    None
}

/// What to do with one packet from the task.
pub(crate) fn answer(view: &NetworkView, networks: &[String], packet: &[u8], turn: usize) -> Reply {
    let Ok(request) = Message::from_vec(packet) else {
        return Reply::Drop;
    };
    if request.message_type() != MessageType::Query {
        return Reply::Drop;
    }
    let Some(query) = request.queries().first().cloned() else {
        return Reply::Drop;
    };
    let Some(addrs) = resolve(view, networks, &query.name().to_ascii(), turn) else {
        return match request.to_vec() {
            Ok(bytes) => Reply::Forward(bytes, request.id()),
            Err(_) => Reply::Drop,
        };
    };
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(ResponseCode::NoError);
    response.add_query(query.clone());
    if query.query_type() != RecordType::A {
        return response.to_vec().map_or(Reply::Drop, Reply::Local);
    }
    // As many answers as the asker's UDP size takes (512 bytes without
    // EDNS); fewer, flagged truncated, so it may ask again over TCP.
    let limit = usize::from(request.max_payload());
    let mut shown = addrs.len();
    loop {
        let mut message = response.clone();
        for a in &addrs[..shown] {
            message.add_answer(Record::from_rdata(query.name().clone(), TTL, RData::A(A(*a))));
        }
        message.set_truncated(shown < addrs.len());
        match message.to_vec() {
            Ok(bytes) if bytes.len() <= limit || shown == 0 => return Reply::Local(bytes),
            Ok(bytes) => {
                // Each further answer is 16 bytes (its name compressed).
                let over = (bytes.len() - limit).div_ceil(16);
                shown = shown.saturating_sub(over.max(1));
            }
            Err(_) => return Reply::Drop,
        }
    }
}

fn servfail(packet: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(packet).ok()?;
    let mut response = Message::error_msg(request.id(), request.op_code(), ResponseCode::ServFail);
    response.add_queries(request.queries().to_vec());
    response.to_vec().ok()
}

/// Where a task's DNS server asks for names that are not the swarm's.
pub enum Upstream {
    /// The service's `--dns` servers, or (none given) the node's resolvers.
    Given(Vec<IpAddr>),
    /// Nowhere (a task on internal networks only): SERVFAIL, as Docker's.
    None,
}

/// Binds 127.0.0.11:53 inside the namespace `ns` and answers there until
/// the returned task is aborted; other names go where `upstream` says.
pub async fn serve(
    ns: &Path,
    view: Arc<RwLock<NetworkView>>,
    networks: Vec<String>,
    upstream: Upstream,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let (given, forwarding) = match upstream {
        Upstream::Given(given) => (Arc::new(given), true),
        Upstream::None => (Arc::new(Vec::new()), false),
    };
    let socket = netns::run_in(ns, || async {
        let socket = std::net::UdpSocket::bind((ADDRESS, 53)).map_err(|e| format!("binding {ADDRESS}:53: {e}"))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("binding {ADDRESS}:53: {e}"))?;
        Ok(socket)
    })
    .await?;
    let socket = Arc::new(tokio::net::UdpSocket::from_std(socket).map_err(|e| format!("serving DNS: {e}"))?);
    let turn = Arc::new(AtomicUsize::new(0));
    let forwards = Arc::new(tokio::sync::Semaphore::new(MAX_FORWARDS));
    Ok(tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let packet = buf[..n].to_vec();
            let local = {
                let view = view.read().unwrap_or_else(|p| p.into_inner());
                answer(&view, &networks, &packet, turn.fetch_add(1, Ordering::Relaxed))
            };
            match local {
                Reply::Local(reply) => {
                    let _ = socket.send_to(&reply, from).await;
                }
                Reply::Forward(..) if !forwarding => {
                    if let Some(reply) = servfail(&packet) {
                        let _ = socket.send_to(&reply, from).await;
                    }
                }
                Reply::Forward(query, id) => {
                    let Ok(permit) = forwards.clone().try_acquire_owned() else {
                        continue;
                    };
                    let (socket, given) = (socket.clone(), given.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        if let Some(reply) = forward(&query, id, &given).await.or_else(|| servfail(&packet)) {
                            let _ = socket.send_to(&reply, from).await;
                        }
                    });
                }
                Reply::Drop => {}
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use swarmkeep_api::dispatcher::{OverlayNetwork, ServiceRecord, TaskRecord};

    use super::*;

    fn view() -> NetworkView {
        let record = |name: &str, addr: &str| TaskRecord {
            name: name.into(),
            addr: addr.into(),
            ..Default::default()
        };
        NetworkView {
            data_path_port: 4789,
            networks: vec![
                OverlayNetwork {
                    id: "a".into(),
                    services: vec![
                        ServiceRecord {
                            name: "web".into(),
                            aliases: vec!["www".into()],
                            vip: "10.0.1.2".into(),
                            tasks: vec![record("web.1.x", "10.0.1.3"), record("web.2.y", "10.0.1.4")],
                            ..Default::default()
                        },
                        ServiceRecord {
                            name: "rr".into(),
                            tasks: vec![record("rr.1.z", "10.0.1.6"), record("rr.2.w", "10.0.1.7")],
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                OverlayNetwork {
                    id: "b".into(),
                    services: vec![ServiceRecord {
                        name: "other".into(),
                        vip: "10.0.2.2".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn names_resolve_as_dockers_embedded_dns() {
        let (view, on_a) = (view(), vec!["a".to_string()]);
        assert_eq!(resolve(&view, &on_a, "web", 0), Some(vec![ip("10.0.1.2")]));
        assert_eq!(resolve(&view, &on_a, "WWW.", 0), Some(vec![ip("10.0.1.2")]));
        assert_eq!(
            resolve(&view, &on_a, "tasks.web", 1),
            Some(vec![ip("10.0.1.4"), ip("10.0.1.3")])
        );
        assert_eq!(
            resolve(&view, &on_a, "rr", 1),
            Some(vec![ip("10.0.1.7"), ip("10.0.1.6")])
        );
        assert_eq!(resolve(&view, &on_a, "web.2.y", 0), Some(vec![ip("10.0.1.4")]));
        // Another network's service is not seen; other names are forwarded.
        assert_eq!(resolve(&view, &on_a, "other", 0), None);
        assert_eq!(resolve(&view, &on_a, "example.org", 0), None);
    }

    #[test]
    fn an_a_query_is_answered_and_a_foreign_name_is_not() {
        let (view, on_a) = (view(), vec!["a".to_string()]);
        let mut q = Message::new();
        q.set_id(7)
            .add_query(Query::query(Name::from_ascii("web.").unwrap(), RecordType::A));
        let Reply::Local(bytes) = answer(&view, &on_a, &q.to_vec().unwrap(), 0) else {
            panic!("web is answered here")
        };
        let reply = Message::from_vec(&bytes).unwrap();
        assert_eq!(reply.id(), 7);
        assert_eq!(reply.answers().len(), 1);
        assert_eq!(reply.answers()[0].data(), &RData::A(A(ip("10.0.1.2"))));
        let mut q = Message::new();
        q.add_query(Query::query(Name::from_ascii("web.").unwrap(), RecordType::AAAA));
        let Reply::Local(bytes) = answer(&view, &on_a, &q.to_vec().unwrap(), 0) else {
            panic!("web is answered here")
        };
        let reply = Message::from_vec(&bytes).unwrap();
        assert_eq!(
            (reply.response_code(), reply.answers().len()),
            (ResponseCode::NoError, 0)
        );
        let mut q = Message::new();
        q.add_query(Query::query(Name::from_ascii("example.org.").unwrap(), RecordType::A));
        assert!(matches!(
            answer(&view, &on_a, &q.to_vec().unwrap(), 0),
            Reply::Forward(..)
        ));
        // An answer larger than 512 bytes is cut, flagged truncated.
        let mut view = view;
        view.networks[0].services[0].vip.clear();
        view.networks[0].services[0].tasks = (1..=100)
            .map(|i| TaskRecord {
                name: format!("web.{i}.x"),
                addr: format!("10.0.1.{}", i + 10),
                ..Default::default()
            })
            .collect();
        let mut q = Message::new();
        q.add_query(Query::query(Name::from_ascii("web.").unwrap(), RecordType::A));
        let Reply::Local(bytes) = answer(&view, &on_a, &q.to_vec().unwrap(), 0) else {
            panic!("web is answered here")
        };
        let reply = Message::from_vec(&bytes).unwrap();
        assert!(bytes.len() <= 512 && reply.truncated(), "{} bytes", bytes.len());
        assert!(reply.answers().len() > 20, "{}", reply.answers().len());
        // Bytes that are no DNS query go nowhere.
        assert_eq!(answer(&view, &on_a, b"GET / HTTP/1.0\r\n\r\n", 0), Reply::Drop);
    }
}
