//! Docker-style `adjective_surname` names for services created without one.

const ADJECTIVES: &[&str] = &[
    "admiring", "agitated", "amazing", "angry", "awesome", "blissful", "bold", "brave", "charming", "clever",
    "compassionate", "competent", "condescending", "confident", "cool", "dazzling", "determined", "distracted",
    "dreamy", "eager", "ecstatic", "elastic", "elated", "elegant", "epic", "exciting", "fervent", "festive",
    "flamboyant", "focused", "friendly", "frosty", "funny", "gallant", "gifted", "goofy", "gracious", "happy",
    "hardcore", "heuristic", "hopeful", "hungry", "infallible", "inspiring", "intelligent", "jolly", "jovial",
    "keen", "kind", "laughing", "loving", "lucid", "magical", "modest", "musing", "mystifying", "naughty",
    "nervous", "nice", "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pedantic", "pensive",
    "practical", "priceless", "quirky", "quizzical", "relaxed", "reverent", "romantic", "serene", "sharp", "silly",
    "sleepy", "stoic", "strange", "stupefied", "suspicious", "sweet", "tender", "thirsty", "trusting", "upbeat",
    "vibrant", "vigilant", "vigorous", "wizardly", "wonderful", "xenodochial", "youthful", "zealous", "zen",
];

const SURNAMES: &[&str] = &[
    "agnesi", "albattani", "allen", "archimedes", "babbage", "banach", "bardeen", "bartik", "bell", "blackwell",
    "bohr", "booth", "borg", "bose", "brahmagupta", "brattain", "burnell", "cannon", "carson", "cerf", "chandrasekhar",
    "clarke", "curie", "darwin", "davinci", "dijkstra", "easley", "einstein", "elion", "engelbart", "euclid",
    "euler", "fermat", "fermi", "feynman", "franklin", "galileo", "gauss", "goldberg", "goodall", "hamilton",
    "hawking", "heisenberg", "hodgkin", "hopper", "hypatia", "jackson", "jennings", "johnson", "kalam", "kepler",
    "khorana", "knuth", "kowalevski", "lamarr", "lamport", "leakey", "liskov", "lovelace", "lumiere", "mayer",
    "mccarthy", "mcclintock", "meitner", "mendel", "minsky", "mirzakhani", "morse", "napier", "newton", "nobel",
    "noether", "pare", "pascal", "pasteur", "payne", "perlman", "pike", "poincare", "ptolemy", "raman", "ride",
    "ritchie", "rosalind", "sammet", "shannon", "shirley", "sinoussi", "stonebraker", "swanson", "tesla",
    "thompson", "torvalds", "turing", "varahamihira", "volhard", "wescoff", "wilbur", "wiles", "williams", "wing",
    "wozniak", "wright", "yalow", "yonath",
];

/// A random `adjective_surname`, as Docker names services and containers.
pub fn random_service_name() -> String {
    let mut b = [0u8; 4];
    swarmkeep_crypto::random_bytes(&mut b);
    let a = ADJECTIVES[usize::from(u16::from_le_bytes([b[0], b[1]])) % ADJECTIVES.len()];
    let s = SURNAMES[usize::from(u16::from_le_bytes([b[2], b[3]])) % SURNAMES.len()];
    format!("{a}_{s}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_look_like_dockers() {
        let re = |n: &str| n.split('_').count() == 2 && n.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        for _ in 0..100 {
            assert!(re(&super::random_service_name()));
        }
    }
}
