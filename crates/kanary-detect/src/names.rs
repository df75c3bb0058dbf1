//! Syscall numbers to names, for explanations.
//!
//! Detectors work on numbers (that is what the kernel packs into n-grams); a finding names them.
//! The agent's numbers are the host's (x86_64), ADFA-LD's are i386, and a recording that names
//! events the table does not know (sysdig's `switch`, `procexit`, ...) gets them interned above the
//! table's last number, still below the 9-bit limit of the n-gram packing.

use serde::{Deserialize, Serialize};

use crate::i386_table::I386;
use kanary_model::ngram::BITS_PER_SYSCALL;
use kanary_model::syscall_table::X86_64;

/// The ABI whose numbering the features use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Abi {
    /// x86_64: the agent on this host, LID-DS recordings.
    #[default]
    X86_64,
    /// 32-bit x86: ADFA-LD.
    I386,
}

impl Abi {
    fn table(self) -> &'static [Option<&'static str>] {
        match self {
            Abi::X86_64 => &X86_64,
            Abi::I386 => &I386,
        }
    }
}

/// Names syscall numbers of one ABI, plus names interned for events the ABI's table lacks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyscallNames {
    /// The numbering.
    pub abi: Abi,
    /// Names without a number in the ABI's table, numbered from the table's length upwards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interned: Vec<String>,
}

/// One past the largest number an n-gram can hold.
const LIMIT: usize = 1 << BITS_PER_SYSCALL;

impl SyscallNames {
    /// Names for `abi`, nothing interned yet.
    pub fn new(abi: Abi) -> Self {
        SyscallNames {
            abi,
            interned: Vec::new(),
        }
    }

    /// The name of `nr`, or `sys_<nr>` when nothing names it.
    pub fn name(&self, nr: u32) -> String {
        let table = self.abi.table();
        let nr = nr as usize;
        if let Some(Some(name)) = table.get(nr) {
            return (*name).to_string();
        }
        nr.checked_sub(table.len())
            .and_then(|i| self.interned.get(i))
            .cloned()
            .unwrap_or_else(|| format!("sys_{nr}"))
    }

    /// The number of `name`: its number in the ABI's table, else an interned one (allocated on first
    /// use). `None` when the interned range is full (the 9-bit packing holds 512 numbers).
    pub fn number(&mut self, name: &str) -> Option<u32> {
        let table = self.abi.table();
        if let Some(nr) = table.iter().position(|entry| *entry == Some(name)) {
            return Some(nr as u32);
        }
        if let Some(i) = self.interned.iter().position(|n| n == name) {
            return Some((table.len() + i) as u32);
        }
        let nr = table.len() + self.interned.len();
        if nr >= LIMIT {
            return None;
        }
        self.interned.push(name.to_string());
        Some(nr as u32)
    }

    /// The syscalls of a packed n-gram of length `len`, oldest first, as `a→b→c`.
    pub fn ngram(&self, packed: u64, len: u32) -> String {
        kanary_model::ngram::unpack(packed, len)
            .into_iter()
            .map(|nr| self.name(nr))
            .collect::<Vec<_>>()
            .join("→")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i386_numbers_match_adfa_ld() {
        let names = SyscallNames::new(Abi::I386);
        assert_eq!(names.name(6), "close");
        assert_eq!(names.name(120), "clone");
        assert_eq!(names.name(195), "stat64");
        assert_eq!(names.name(252), "exit_group");
        assert_eq!(names.name(500), "sys_500");
    }

    #[test]
    fn unknown_names_are_interned_below_the_packing_limit() {
        let mut names = SyscallNames::new(Abi::X86_64);
        assert_eq!(names.number("openat"), Some(257));
        let switch = names.number("switch");
        assert_eq!(switch, Some(X86_64.len() as u32));
        assert_eq!(names.number("switch"), switch);
        assert_eq!(names.name(X86_64.len() as u32), "switch");
        let mut last = None;
        for i in 0..LIMIT {
            last = names.number(&format!("event{i}"));
        }
        assert_eq!(last, None, "the interned range is bounded by 9 bits");
        assert_eq!(
            names.ngram(kanary_model::ngram::pack(&[0, 1, 3]), 3),
            "read→write→close"
        );
    }
}
