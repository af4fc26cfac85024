/// A new object ID as swarmkit makes them: 128 random bits (17 bytes with the
/// top bit set) written in base 36, characters 1..26: always 25 of `[0-9a-z]`.
pub fn new_id() -> String {
    let mut bytes = [0u8; 17];
    crate::random_bytes(&mut bytes);
    bytes[0] |= 0x80;
    let digits = base36(&bytes);
    digits[1..26].to_string()
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
    String::from_utf8(out).unwrap_or_default()
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
    fn base36_matches_known_values() {
        assert_eq!(base36(&[0x01, 0x00]), "74");
        assert_eq!(base36(&[35]), "z");
        assert_eq!(base36(&[36]), "10");
    }
}
