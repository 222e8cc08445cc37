/** One sentence of a tagged corpus: words and one tag per word. */
export interface Sentence {
  tokens: string[];
  tags: string[];
  /** Index of the document the sentence belongs to (CoNLL `-DOCSTART-`), for document context. */
  docId?: number;
}

/** A corpus as read from disk. `source` names the file or folder, for messages. */
export interface Corpus {
  source: string;
  sentences: Sentence[];
}

export type TagScheme = "IOB1" | "IOB2" | "IOBES";
