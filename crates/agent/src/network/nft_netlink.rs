//! Adding and removing one element of a bridge's `endpoints` set (see
//! [`super::firewall`]) straight over netlink: one nf_tables batch to the
//! kernel and its acknowledgement, ~0.1 ms, where an `nft` run costs ~7 ms
//! (a process, then its netlink cache). It is on every task's start, so it
//! is done here; the rules and the set themselves, made once per bridge,
//! stay in `nft`'s language.
//!
//! The messages are nfnetlink's (`linux/netfilter/nfnetlink.h`,
//! `nf_tables.h`): a `BATCH_BEGIN`, the `NEWSETELEM`/`DELSETELEM` with its
//! acknowledgement asked, a `BATCH_END`. The key is the set's concatenation
//! `ifname . ether_addr . ipv4_addr`, each part padded to 4 bytes as nft
//! lays it out in the kernel's registers: 16 + 8 + 4 bytes.

use std::net::Ipv4Addr;

use netlink_packet_core::{
    ErrorBuffer, NLA_F_NESTED, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST, NLMSG_ERROR, NetlinkBuffer,
};
use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_BRIDGE: u8 = 7;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_DATA_VALUE: u16 = 1;
const IFNAMSIZ: usize = 16;

/// What to do with the element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Delete,
}

/// The set key for a task's port: `ifname . ether_addr . ipv4_addr`.
pub fn endpoint_key(port: &str, mac: &[u8; 6], ip: Ipv4Addr) -> Result<Vec<u8>, String> {
    if port.is_empty() || port.len() >= IFNAMSIZ || port.as_bytes().contains(&0) {
        return Err(format!("invalid interface name {port:?}"));
    }
    let mut key = vec![0u8; IFNAMSIZ + 8 + 4];
    key[..port.len()].copy_from_slice(port.as_bytes());
    key[IFNAMSIZ..IFNAMSIZ + 6].copy_from_slice(mac);
    key[IFNAMSIZ + 8..].copy_from_slice(&ip.octets());
    Ok(key)
}

/// One attribute: header, value, padding to 4 bytes.
fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

fn nested(out: &mut Vec<u8>, kind: u16, inner: impl FnOnce(&mut Vec<u8>)) {
    let mut value = Vec::new();
    inner(&mut value);
    attr(out, kind | NLA_F_NESTED, &value);
}

fn c_string(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// One netlink message: header, nfgenmsg, attributes.
fn message(out: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &[u8]) {
    let len = 16 + 4 + attrs.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family, version 0, resource id (big endian).
    out.push(family);
    out.push(0);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
}

/// The batch that adds or deletes `key` in set `set` of bridge table
/// `table`; the element's message carries `seq` and asks for an ack.
pub fn batch(op: Op, table: &str, set: &str, key: &[u8], seq: u32) -> Vec<u8> {
    let mut attrs = Vec::new();
    attr(&mut attrs, NFTA_SET_ELEM_LIST_TABLE, &c_string(table));
    attr(&mut attrs, NFTA_SET_ELEM_LIST_SET, &c_string(set));
    nested(&mut attrs, NFTA_SET_ELEM_LIST_ELEMENTS, |list| {
        nested(list, NFTA_LIST_ELEM, |elem| {
            nested(elem, NFTA_SET_ELEM_KEY, |k| attr(k, NFTA_DATA_VALUE, key));
        });
    });
    let (kind, flags) = match op {
        Op::Add => (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK),
        Op::Delete => (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK),
    };
    let mut out = Vec::new();
    message(
        &mut out,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        seq.wrapping_sub(1),
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    message(
        &mut out,
        (NFNL_SUBSYS_NFTABLES << 8) | kind,
        flags,
        seq,
        NFPROTO_BRIDGE,
        0,
        &attrs,
    );
    message(
        &mut out,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        seq.wrapping_add(1),
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    out
}

/// The kernel's answer to the message `seq` in `reply` (a datagram of
/// netlink messages): `Some(Ok)` for its ack, `Some(Err(errno))` for an
/// error on it or on the batch around it, `None` if not there.
pub fn answer(reply: &[u8], seq: u32) -> Option<Result<(), i32>> {
    let mut rest = reply;
    while rest.len() >= 16 {
        let msg = NetlinkBuffer::new_checked(rest).ok()?;
        let len = (msg.length() as usize).next_multiple_of(4).min(rest.len());
        if msg.message_type() == NLMSG_ERROR {
            let err = ErrorBuffer::new_checked(msg.payload()).ok()?;
            let code = err.code().map(|c| c.get()).unwrap_or(0);
            // Any error answers the batch (an error on BATCH_BEGIN,
            // e.g. EPERM, means the element's message was never read).
            if code != 0 {
                return Some(Err(-code));
            }
            if msg.sequence_number() == seq {
                return Some(Ok(()));
            }
        }
        if len == 0 {
            break;
        }
        rest = &rest[len..];
    }
    None
}

/// Adds (or deletes) the task port's element; blocking (a netlink round
/// trip on the host's namespace), bounded by a 2-second receive timeout.
pub fn endpoint(op: Op, table: &str, set: &str, key: &[u8]) -> Result<(), String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(1);
    let seq = SEQ.fetch_add(3, Ordering::Relaxed).wrapping_add(1);
    let what = match op {
        Op::Add => "adding",
        Op::Delete => "removing",
    };
    let fail = |e: std::io::Error| format!("{what} the port's firewall entry: {e}");
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(fail)?;
    socket.bind_auto().map_err(fail)?;
    set_receive_timeout(&socket, std::time::Duration::from_secs(2)).map_err(fail)?;
    socket.send(&batch(op, table, set, key, seq), 0).map_err(fail)?;
    let mut buf = Vec::with_capacity(8192);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        buf.clear();
        match socket.recv(&mut buf, 0) {
            Ok(_) => {}
            // A signal on this thread: read on (the timeout still bounds it).
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted && std::time::Instant::now() < deadline => {
                continue;
            }
            Err(e) => return Err(fail(e)),
        }
        match answer(&buf, seq) {
            Some(Ok(())) => return Ok(()),
            Some(Err(errno)) => return Err(fail(std::io::Error::from_raw_os_error(errno))),
            None => continue,
        }
    }
}

fn set_receive_timeout(socket: &Socket, timeout: std::time::Duration) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: a live socket fd and a timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_padded_as_nft_lays_it_out() {
        let key = endpoint_key("swkp1234", &[2, 0x42, 10, 1, 2, 3], Ipv4Addr::new(10, 1, 2, 3)).expect("key");
        assert_eq!(key.len(), 28);
        assert_eq!(&key[..8], b"swkp1234");
        assert!(key[8..16].iter().all(|b| *b == 0));
        assert_eq!(&key[16..22], &[2, 0x42, 10, 1, 2, 3]);
        assert_eq!(&key[22..24], &[0, 0]);
        assert_eq!(&key[24..], &[10, 1, 2, 3]);
        assert!(endpoint_key("", &[0; 6], Ipv4Addr::LOCALHOST).is_err());
        assert!(endpoint_key("sixteen-chars-xx", &[0; 6], Ipv4Addr::LOCALHOST).is_err());
        assert!(endpoint_key("a\0b", &[0; 6], Ipv4Addr::LOCALHOST).is_err());
    }

    #[test]
    fn batch_frames_the_element_between_begin_and_end() {
        let key = [7u8; 28];
        let b = batch(Op::Add, "swk_t", "endpoints", &key, 100);
        let mut lens = Vec::new();
        let mut rest = &b[..];
        while !rest.is_empty() {
            let msg = NetlinkBuffer::new_checked(rest).expect("message");
            lens.push((msg.message_type(), msg.sequence_number(), msg.flags()));
            rest = &rest[msg.length() as usize..];
        }
        assert_eq!(
            lens,
            vec![
                (NFNL_MSG_BATCH_BEGIN, 99, NLM_F_REQUEST),
                (0x0a0c, 100, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK),
                (NFNL_MSG_BATCH_END, 101, NLM_F_REQUEST),
            ]
        );
        // The key is in there, whole.
        assert!(b.windows(28).any(|w| w == key));
    }

    fn error_message(seq: u32, code: i32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&36u32.to_ne_bytes());
        out.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        out.extend_from_slice(&0u16.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&code.to_ne_bytes());
        out.extend_from_slice(&[0u8; 16]);
        out
    }

    #[test]
    fn answers_are_read_by_sequence() {
        assert_eq!(answer(&error_message(5, 0), 5), Some(Ok(())));
        assert_eq!(answer(&error_message(4, 0), 5), None);
        assert_eq!(answer(&error_message(4, -1), 5), Some(Err(1)));
        let mut two = error_message(4, 0);
        two.extend(error_message(5, -2));
        assert_eq!(answer(&two, 5), Some(Err(2)));
        assert_eq!(answer(&[1, 2, 3], 5), None);
    }
}
