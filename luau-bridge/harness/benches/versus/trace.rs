//! The bench's workload as data, generated once from a seed so every runtime replays the
//! same calls: per frame, the sparse events (health, state, decisions); the `status.x`
//! change of every NPC every frame is implicit (value `frame + npc`, 1-based NPC).

use serde_json::{json, Value as Json};

/// Event kinds (the numbers the Luau driver and `benches/trace_frame.mjs` read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `setHealth(npc, value)`.
    Health = 2,
    /// `setState(npc, value == 1 ? "Combat" : "Idle")`.
    State = 3,
    /// `decide(npc)`.
    Decide = 4,
}

/// Frames 0..=frames of events, flattened (numbers, so Luau reads plain arrays).
pub struct Trace {
    pub npcs: u32,
    pub frames: u32,
    /// 1-based index of frame f's first event at `starts[f]` (0-based f); one more entry
    /// closes the last frame.
    pub starts: Vec<f64>,
    pub kinds: Vec<f64>,
    /// 1-based NPC numbers.
    pub who: Vec<f64>,
    pub vals: Vec<f64>,
}

/// xorshift64*: small, seeded, the same everywhere.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

struct Npc {
    fighter: bool,
    health: f64,
    fight_until: f64,
    next_fight: f64,
    next_hit: f64,
    next_heal: f64,
    next_decision: f64,
}

impl Trace {
    /// One NPC in five fights: fights of 15 to 40 s with 5 to 20 s between, a hit every 0.4
    /// to 1.5 s (70 % 1-9 points, 20 % 10-19, 10 % 20-35: critical), 2 points healed every
    /// 0.5 s out of a fight; every NPC decides every 1.5 to 3 s in a fight, 4 to 8 s
    /// otherwise. Frame 0 sets every fighter's health and state (not timed).
    pub fn generate(npcs: u32, frames: u32, seed: u64) -> Trace {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut list: Vec<Npc> = (0..npcs)
            .map(|i| Npc {
                fighter: i % 5 == 0,
                health: 100.0,
                fight_until: -1.0,
                next_fight: rng.range(0.0, 10.0),
                next_hit: 0.0,
                next_heal: 0.0,
                next_decision: rng.range(0.0, 5.0),
            })
            .collect();
        let mut t = Trace {
            npcs,
            frames,
            starts: Vec::new(),
            kinds: Vec::new(),
            who: Vec::new(),
            vals: Vec::new(),
        };
        let push = |t: &mut Trace, k: Kind, i: usize, v: f64| {
            t.kinds.push(k as u8 as f64);
            t.who.push(i as f64 + 1.0);
            t.vals.push(v);
        };
        t.starts.push(1.0);
        for (i, n) in list.iter().enumerate() {
            if n.fighter {
                push(&mut t, Kind::Health, i, 100.0);
                push(&mut t, Kind::State, i, 0.0);
            }
        }
        for f in 1..=frames {
            t.starts.push(t.kinds.len() as f64 + 1.0);
            let now = f64::from(f) / 60.0;
            for (i, n) in list.iter_mut().enumerate() {
                let in_fight = now < n.fight_until;
                if n.fighter {
                    if !in_fight && n.fight_until > 0.0 {
                        n.fight_until = -1.0;
                        n.next_fight = now + rng.range(5.0, 20.0);
                        n.next_heal = now + 0.5;
                        push(&mut t, Kind::State, i, 0.0);
                    } else if !in_fight && now >= n.next_fight {
                        n.fight_until = now + rng.range(15.0, 40.0);
                        n.next_hit = now + rng.range(0.2, 1.0);
                        push(&mut t, Kind::State, i, 1.0);
                    }
                    if now < n.fight_until && now >= n.next_hit {
                        n.next_hit = now + rng.range(0.4, 1.5);
                        let r = rng.unit();
                        let dmg = if r < 0.7 {
                            rng.range(1.0, 9.0)
                        } else if r < 0.9 {
                            rng.range(10.0, 19.0)
                        } else {
                            rng.range(20.0, 35.0)
                        };
                        let h = (n.health - dmg.round()).max(0.0);
                        n.health = if h == 0.0 { 100.0 } else { h };
                        push(&mut t, Kind::Health, i, n.health);
                    } else if now >= n.fight_until && n.health < 100.0 && now >= n.next_heal {
                        n.next_heal = now + 0.5;
                        n.health = (n.health + 2.0).min(100.0);
                        push(&mut t, Kind::Health, i, n.health);
                    }
                }
                if now >= n.next_decision {
                    let fighting = now < n.fight_until;
                    n.next_decision = now
                        + if fighting {
                            rng.range(1.5, 3.0)
                        } else {
                            rng.range(4.0, 8.0)
                        };
                    push(&mut t, Kind::Decide, i, 0.0);
                }
            }
        }
        t.starts.push(t.kinds.len() as f64 + 1.0);
        t
    }

    /// The file `benches/trace_frame.mjs` reads.
    pub fn to_json(&self) -> Json {
        json!({
            "npcs": self.npcs,
            "frames": self.frames,
            "starts": self.starts,
            "kinds": self.kinds,
            "who": self.who,
            "vals": self.vals,
        })
    }

    /// Frame f's events as (kind, 0-based NPC, value).
    pub fn events(&self, f: u32) -> impl Iterator<Item = (Kind, usize, f64)> + '_ {
        let (a, b) = (
            self.starts[f as usize] as usize - 1,
            self.starts[f as usize + 1] as usize - 1,
        );
        (a..b).map(move |e| {
            let k = match self.kinds[e] as u8 {
                2 => Kind::Health,
                3 => Kind::State,
                _ => Kind::Decide,
            };
            (k, self.who[e] as usize - 1, self.vals[e])
        })
    }
}
