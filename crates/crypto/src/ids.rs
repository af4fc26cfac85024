/// A new object ID as swarmkit makes them: 128 random bits (17 bytes with the
/// top bit set) written in base 36, characters 1..26: always 25 of `[0-9a-z]`.
pub fn new_id() -> String {
    let mut bytes = [0u8; 17];
    crate::random_bytes(&mut bytes);
    bytes[0] |= 0x80;
    let digits = base36(&bytes);
    digits[1..26].to_string()
}

/// Big-endian bytes as a base-36 number, left-padded with zeros to `width`
/// digits (as Go's `fmt.Sprintf("%0*s", width, n.Text(36))`).
pub fn base36_padded(bytes: &[u8], width: usize) -> String {
    format!("{:0>width$}", base36(bytes))
}

/// Big-endian bytes as a base-36 number, most significant digit first.
fn base36(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut num = bytes.to_vec();
    let mut out = Vec::new();
    while num.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for byte in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*byte);
            *byte = (acc / 36) as u8;
            rem = acc % 36;
        }
        out.push(ALPHABET[rem as usize]);
    }
    out.reverse();
    if out.is_empty() {
        out.push(b'0');
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The inverse of [`base36_padded`]: a base-36 number as 32 big-endian bytes
/// (a SHA-256 digest), or None if it is not one.
pub fn base36_to_32_bytes(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for c in text.bytes() {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            _ => return None,
        };
        let mut carry = u32::from(digit);
        for byte in out.iter_mut().rev() {
            let acc = u32::from(*byte) * 36 + carry;
            *byte = acc as u8;
            carry = acc >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_25_lowercase_base36_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 25);
        assert!(a.bytes().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn base36_round_trips_digests() {
        let digest = [0xabu8; 32];
        let text = base36_padded(&digest, 50);
        assert_eq!(text.len(), 50);
        assert_eq!(base36_to_32_bytes(&text), Some(digest));
        assert_eq!(base36_to_32_bytes(&base36_padded(&[0u8; 32], 50)), Some([0u8; 32]));
        assert_eq!(base36_to_32_bytes("Z"), None);
    }

    #[test]
    fn base36_matches_known_values() {
        assert_eq!(base36(&[0x01, 0x00]), "74");
        assert_eq!(base36(&[35]), "z");
        assert_eq!(base36(&[36]), "10");
    }
}
