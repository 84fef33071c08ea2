#!/usr/bin/env node
/**
 * The `lightbus` executable.
 *
 * @module
 */
import { main } from './cli.js';

const code = await main(process.argv);
// Exit explicitly: timers or sockets a user's bus module left open must not keep a finished
// command alive.
process.exit(code);
