package tickets

// Stopwords are the commonest words of the languages triage reads, in
// lower case and without accents: they tell the languages apart, and say
// nothing of what a ticket is about.
var Stopwords = map[string][]string{
	"en": {"the", "and", "is", "to", "of", "in", "it", "we", "our", "you", "for", "not", "with", "this", "can", "please", "since", "are", "have", "has", "was", "but", "my", "from", "that", "they", "there", "what", "how", "would", "could", "any", "all", "get", "been", "just", "thanks", "hi", "hello", "your", "its", "when", "will", "out", "about", "some", "now", "also", "one", "who", "which", "after", "before", "into", "than", "then", "them", "their", "does", "did", "don't", "can't", "i'm", "it's", "we're"},
	"de": {"der", "die", "das", "und", "ist", "nicht", "ich", "wir", "unsere", "unser", "sie", "mit", "seit", "bitte", "ein", "eine", "auf", "den", "dem", "des", "zu", "von", "fur", "es", "mein", "meine", "kann", "konnen", "haben", "habe", "hat", "wie", "auch", "noch", "nur", "aber", "oder", "bei", "uns", "sind", "wird", "werden", "nach", "einen", "einem", "einer", "gibt", "wenn", "dass", "danke", "hallo", "guten", "mehr", "keine", "kein", "schon", "heute"},
	"fr": {"le", "la", "les", "et", "est", "pas", "je", "nous", "notre", "vous", "avec", "pour", "une", "des", "sur", "merci", "du", "de", "un", "en", "au", "aux", "il", "elle", "ce", "cette", "qui", "que", "ne", "plus", "mon", "ma", "mes", "nos", "votre", "depuis", "pouvez", "bonjour", "dans", "par", "sont", "fait", "tout", "tous", "mais", "ou", "comment", "cordialement", "aujourd'hui", "ont", "avons", "suis", "j'ai"},
	"es": {"el", "la", "los", "las", "y", "es", "no", "yo", "nosotros", "nuestro", "nuestra", "usted", "con", "para", "una", "por", "gracias", "de", "del", "en", "un", "que", "se", "lo", "mi", "mis", "desde", "pueden", "hola", "como", "pero", "muy", "esta", "este", "estan", "hay", "todo", "todos", "ya", "le", "les", "al", "sus", "su", "nos", "han", "ha", "saludos", "hoy"},
	"it": {"il", "lo", "la", "gli", "e", "non", "io", "noi", "nostro", "nostra", "con", "per", "una", "grazie", "che", "di", "da", "in", "un", "del", "della", "dei", "delle", "mio", "mia", "sono", "siamo", "potete", "buongiorno", "come", "ma", "anche", "piu", "ho", "ha", "abbiamo", "questo", "questa", "nel", "nella", "al", "alla", "si", "ci", "se", "tutti", "tutto", "oggi", "saluti"},
	"pt": {"o", "a", "os", "as", "e", "nao", "eu", "nos", "nosso", "nossa", "com", "para", "uma", "obrigado", "obrigada", "por", "de", "do", "da", "dos", "das", "em", "um", "que", "se", "meu", "minha", "desde", "podem", "ola", "como", "mas", "muito", "esta", "este", "estao", "tem", "todo", "todos", "ja", "no", "na", "ao", "seu", "sua", "foi", "sao", "hoje", "voce", "voces"},
	"nl": {"de", "het", "een", "en", "is", "niet", "ik", "wij", "we", "onze", "ons", "u", "met", "voor", "op", "bedankt", "sinds", "van", "in", "te", "dat", "die", "er", "mijn", "kunnen", "kan", "jullie", "hallo", "hoe", "maar", "ook", "nog", "zijn", "heb", "heeft", "hebben", "wordt", "naar", "bij", "als", "dan", "geen", "meer", "vandaag", "groet", "goedemorgen"},
}

var stopwordSet = func() map[string]bool {
	m := map[string]bool{}
	for _, list := range Stopwords {
		for _, w := range list {
			m[w] = true
		}
	}
	return m
}()

// IsStopword reports whether w is one of the Stopwords.
func IsStopword(w string) bool { return stopwordSet[w] }

// allStopwords lists every stop word once.
func allStopwords() []string {
	out := make([]string, 0, len(stopwordSet))
	for w := range stopwordSet {
		out = append(out, w)
	}
	return out
}
