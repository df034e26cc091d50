/// What an upstream's `401` asks of the gateway (one rule for every pipeline):
/// - RFC 9470 `insufficient_user_authentication` → the browser gets the step-up problem;
/// - RFC 9449 §9 `use_dpop_nonce` with a `DPoP-Nonce` → the call is sent once more with a proof
///   carrying the nonce (idempotent calls without a body).
public enum UpstreamChallenge: Sendable, Equatable {
    /// Answer the browser with this `step-up-required` problem.
    case stepUp(Problem)
    /// Retry with this nonce in the DPoP proof.
    case dpopNonce(String)

    /// The challenge in a response with `status` and these header fields, if any.
    public static func read<Field>(
        status: Int, fields: some Sequence<Field>, name: (Field) -> String, value: (Field) -> String
    ) -> UpstreamChallenge? {
        guard status == 401 else { return nil }
        var nonce: String?
        var challenges: [(scheme: String, parameters: [String: String])] = []
        for field in fields {
            switch name(field).lowercased() {
            case "www-authenticate": challenges += parse(value(field))
            case "dpop-nonce": nonce = value(field)
            default: continue
            }
        }
        for challenge in challenges {
            switch challenge.parameters["error"] {
            case "insufficient_user_authentication":
                let acr = challenge.parameters["acr_values"].map {
                    $0.split(separator: " ").map(String.init).filter(StepUp.isValidACR)
                }
                let maxAge = challenge.parameters["max_age"].flatMap(StepUp.parseMaxAge)
                return .stepUp(.stepUpRequired(acrValues: acr?.isEmpty == false ? acr : nil, maxAge: maxAge))
            case "use_dpop_nonce" where challenge.scheme == "dpop":
                if let nonce, isValidNonce(nonce) { return .dpopNonce(nonce) }
            default: continue
            }
        }
        return nil
    }

    /// RFC 9449 §8.1: 1+ characters of `%x21 / %x23-5B / %x5D-7E`; bounded here.
    public static func isValidNonce(_ nonce: String) -> Bool {
        !nonce.isEmpty && nonce.utf8.count <= 512
            && nonce.utf8.allSatisfy { $0 == 0x21 || (0x23...0x5B).contains($0) || (0x5D...0x7E).contains($0) }
    }

    /// The challenges of one `WWW-Authenticate` value (RFC 9110 §11.6.1): a scheme, then
    /// `name=token` or `name="quoted"` parameters; a comma followed by `token SP` starts the next.
    /// Schemes are lower-cased; malformed parts are skipped.
    static func parse(_ text: String) -> [(scheme: String, parameters: [String: String])] {
        var result: [(scheme: String, parameters: [String: String])] = []
        let bytes = Array(text.utf8.prefix(8192))
        var index = 0
        func skip(_ set: Set<UInt8>) { while index < bytes.count, set.contains(bytes[index]) { index += 1 } }
        func token() -> String {
            let start = index
            while index < bytes.count, isTokenByte(bytes[index]) { index += 1 }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }
        while index < bytes.count {
            skip([0x20, 0x09, 0x2C])
            let word = token()
            guard !word.isEmpty else {
                index += 1
                continue
            }
            skip([0x20, 0x09])
            if index < bytes.count, bytes[index] == UInt8(ascii: "="), !result.isEmpty {
                // A parameter of the current challenge.
                index += 1
                skip([0x20, 0x09])
                var value = ""
                if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                    index += 1
                    var collected: [UInt8] = []
                    while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                        if bytes[index] == UInt8(ascii: "\\"), index + 1 < bytes.count { index += 1 }
                        collected.append(bytes[index])
                        index += 1
                    }
                    index += 1
                    value = String(decoding: collected, as: UTF8.self)
                } else {
                    value = token()
                }
                result[result.count - 1].parameters[word.lowercased()] = value
            } else {
                result.append((scheme: word.lowercased(), parameters: [:]))
            }
        }
        return result
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "a")...UInt8(ascii: "z"):
            return true
        default:
            return "!#$%&'*+-.^_`|~/".utf8.contains(byte)
        }
    }
}
