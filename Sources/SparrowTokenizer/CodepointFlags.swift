/// Character classes of a Unicode scalar as llama.cpp's pre-tokenizers see them.
///
/// llama.cpp ships its own tables generated from Unicode 15.1, so scalars assigned in later
/// Unicode versions count as undefined here even though Swift's own tables know them.
/// `none` (all bits clear) stands for "outside the text being split", which is how llama.cpp's
/// scanners see positions past the end of a fragment.
struct CodepointFlags: OptionSet, Sendable {
    let rawValue: UInt16

    static let undefined = CodepointFlags(rawValue: 1 << 0)
    static let number = CodepointFlags(rawValue: 1 << 1)
    static let letter = CodepointFlags(rawValue: 1 << 2)
    static let separator = CodepointFlags(rawValue: 1 << 3)
    static let accentMark = CodepointFlags(rawValue: 1 << 4)
    static let punctuation = CodepointFlags(rawValue: 1 << 5)
    static let symbol = CodepointFlags(rawValue: 1 << 6)
    static let control = CodepointFlags(rawValue: 1 << 7)
    static let whitespace = CodepointFlags(rawValue: 1 << 8)

    static let none: CodepointFlags = []

    var isLetter: Bool { contains(.letter) }
    var isNumber: Bool { contains(.number) }
    var isWhitespace: Bool { contains(.whitespace) }
    /// `[^\s\p{L}\p{N}]` for a position inside the fragment.
    var isOther: Bool { !isEmpty && !contains(.whitespace) && !contains(.letter) && !contains(.number) }

    init(rawValue: UInt16) { self.rawValue = rawValue }

    init(_ value: UInt32) {
        if value < 128 {
            self = CodepointFlags.asciiTable[Int(value)]
        } else {
            self = CodepointFlags.compute(value)
        }
    }

    private static let asciiTable: [CodepointFlags] = (0..<128).map { compute(UInt32($0)) }

    /// The Unicode White_Space property, which is llama.cpp's whitespace set.
    private static func isWhiteSpace(_ value: UInt32) -> Bool {
        switch value {
        case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    private static func compute(_ value: UInt32) -> CodepointFlags {
        guard let scalar = Unicode.Scalar(value) else { return .undefined }
        var flags: CodepointFlags = isWhiteSpace(value) ? .whitespace : []
        let properties = scalar.properties
        if value >= 128 {
            guard let age = properties.age, age.major < 15 || (age.major == 15 && age.minor <= 1) else {
                return flags.union(.undefined)
            }
        }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            flags.insert(.letter)
        case .decimalNumber, .letterNumber, .otherNumber:
            flags.insert(.number)
        case .spaceSeparator, .lineSeparator, .paragraphSeparator:
            flags.insert(.separator)
        case .nonspacingMark, .spacingMark, .enclosingMark:
            flags.insert(.accentMark)
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            flags.insert(.punctuation)
        case .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            flags.insert(.symbol)
        case .control, .format, .surrogate, .privateUse:
            flags.insert(.control)
        case .unassigned:
            flags.insert(.undefined)
        @unknown default:
            flags.insert(.undefined)
        }
        return flags
    }
}
