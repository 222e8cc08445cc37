/** The one error type this package throws for bad input; `where` names the file/line/field at fault. */
export class NerEngineError extends Error {
  constructor(message: string, readonly where?: string) {
    super(where ? `${where}: ${message}` : message);
    this.name = "NerEngineError";
  }
}
