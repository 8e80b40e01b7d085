/**
 * An error caused by the user's input (a file, an option, a data set), as opposed to a bug.
 * The CLI prints its message as one line, without a stack trace, and exits non-zero.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}
