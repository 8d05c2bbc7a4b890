import { useState } from "preact/hooks";
import { type TokenGroup, getToken, setToken } from "./api.js";

const NAMES: Record<TokenGroup, string> = {
  admin: "ADMIN_TOKEN",
  stats: "STATS_TOKEN",
  trace: "TRACE_TOKEN",
};

/**
 * Asks for a group's token once; kept in sessionStorage for this tab. A password field, so
 * the browser neither shows nor autocompletes it.
 */
export function TokenForm(props: { group: TokenGroup; onChange: () => void }) {
  const [value, setValue] = useState("");
  const has = getToken(props.group) !== null;
  const id = `token-${props.group}`;
  if (has) {
    return (
      <p class="token">
        {NAMES[props.group]} is set for this tab.{" "}
        <button
          type="button"
          class="link"
          onClick={() => {
            setToken(props.group, null);
            props.onChange();
          }}
        >
          Forget it
        </button>
      </p>
    );
  }
  return (
    <form
      class="token"
      onSubmit={(e) => {
        e.preventDefault();
        if (value.trim() === "") return;
        setToken(props.group, value.trim());
        setValue("");
        props.onChange();
      }}
    >
      <label for={id}>{NAMES[props.group]}</label>
      <input
        id={id}
        type="password"
        autocomplete="off"
        value={value}
        onInput={(e) => setValue((e.currentTarget as HTMLInputElement).value)}
      />
      <button type="submit">Use token</button>
    </form>
  );
}
