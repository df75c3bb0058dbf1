//! System call names and numbers of the host architecture.

use crate::syscall_table;

/// The name of syscall `nr` on this architecture, or `None` when no syscall has that number.
pub fn name(nr: u32) -> Option<&'static str> {
    syscall_table::X86_64.get(nr as usize).copied().flatten()
}

/// The name of syscall `nr`, or `sys_<nr>` when the table does not know it.
pub fn name_or_number(nr: u32) -> String {
    name(nr).map_or_else(|| format!("sys_{nr}"), str::to_string)
}

/// The number of the syscall called `name`.
pub fn number(name: &str) -> Option<u32> {
    syscall_table::X86_64
        .iter()
        .position(|entry| *entry == Some(name))
        .map(|nr| nr as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers_match_the_x86_64_abi() {
        assert_eq!(name(0), Some("read"));
        assert_eq!(name(59), Some("execve"));
        assert_eq!(name(322), Some("execveat"));
        assert_eq!(name(435), Some("clone3"));
        assert_eq!(name(462), Some("mseal"));
        assert_eq!(number("openat"), Some(257));
        assert_eq!(name_or_number(511), "sys_511");
    }
}
