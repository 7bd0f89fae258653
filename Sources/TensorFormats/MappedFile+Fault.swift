// SIGBUS on a mapped input means the file shrank under the mapping (another program truncated it). The handler
// looks the faulting address up among the live mappings and ends the process with one `error:` line naming the
// file and the byte, exit status 1 — only write(2) and _exit(2) inside the handler. Staged outputs stay staged
// (a conversion's journal keeps its finished tensors for --resume); nothing appears under a final name.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The live mappings, in a fixed table the signal handler can read without allocating or locking.
enum MappedRegions {
    private struct Slot {
        var start: UInt = 0
        var end: UInt = 0
        var path: UnsafeMutablePointer<CChar>? = nil
    }

    private static let capacity = 4096
    nonisolated(unsafe) private static let slots: UnsafeMutablePointer<Slot> = {
        let table = UnsafeMutablePointer<Slot>.allocate(capacity: capacity)
        table.initialize(repeating: Slot(), count: capacity)
        return table
    }()
    /// Scratch for the message's number, allocated before any fault.
    nonisolated(unsafe) private static let digits = UnsafeMutablePointer<CChar>.allocate(capacity: 32)
    nonisolated(unsafe) private static var lock = pthread_mutex_t()
    nonisolated(unsafe) private static var installed = false

    static func register(base: UnsafeRawPointer, size: Int, path: String) {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        if !installed {
            installed = true
            _ = digits
            installHandler()
        }
        let start = UInt(bitPattern: base)
        for i in 0..<capacity where slots[i].end == 0 {
            slots[i].path = strdup(path)
            slots[i].start = start
            slots[i].end = start + UInt(size)
            return
        }
        // Table full: the mapping still works; a fault in it is reported without the file name.
    }

    static func unregister(base: UnsafeRawPointer) {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        let start = UInt(bitPattern: base)
        for i in 0..<capacity where slots[i].start == start && slots[i].end != 0 {
            slots[i].end = 0
            free(slots[i].path)
            slots[i].path = nil
            return
        }
    }

    private static func installHandler() {
        #if canImport(Glibc)
        var action = sigaction()
        action.__sigaction_handler.sa_sigaction = { _, info, _ in MappedRegions.fault(address: info?.pointee._sifields._sigfault.si_addr) }
        action.sa_flags = SA_SIGINFO
        sigemptyset(&action.sa_mask)
        sigaction(SIGBUS, &action, nil)
        #endif
    }

    private static func write(_ text: UnsafePointer<CChar>) {
        #if canImport(Glibc)
        _ = Glibc.write(2, text, strlen(text))
        #endif
    }

    /// Runs inside the SIGBUS handler.
    private static func fault(address: UnsafeMutableRawPointer?) {
        let where_ = UInt(bitPattern: address)
        for i in 0..<capacity {
            let slot = slots[i]
            guard slot.end != 0, where_ >= slot.start, where_ < slot.end, let path = slot.path else { continue }
            write("error: ")
            write(path)
            write(": read at byte ")
            var value = where_ - slot.start
            var n = 31
            digits[n] = 0
            repeat {
                n -= 1
                digits[n] = CChar(48 + Int(value % 10))
                value /= 10
            } while value > 0 && n > 0
            write(digits + n)
            write(
                """
                 failed: the file shrank while moeq was reading it (another program truncated or is rewriting it); \
                let that finish, then run the command again (a conversion: with --resume)

                """)
            _exit(1)
        }
        // Not one of our mappings: a genuine fault. Restore the default action; returning re-raises it.
        signal(SIGBUS, SIG_DFL)
    }
}
